"""What the admin API's keys and tokens routes take and answer (`api.routes.keys`).

Secrets appear in an answer once — when they are made — and never in a
list: a listed secret key shows its hint, a token its hint and scopes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from state.admin_tokens import Scope
from state.config import Identifier
from state.writekeys import KeyKind

Origin = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=r"^(\*|https?://[^/\s]+)$")]
Origins = Annotated[list[Origin], msgspec.Meta(max_length=100)]
Grace = Annotated[float, msgspec.Meta(ge=0, le=90 * 86_400)]


class SiteBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new site: its browser origins (for its public key), a name, and whether to trust browser identity.

    `trust_browser_identity` true restores the old behaviour for this site
    (a browser's `userId` believed without `context.userHash`); absent: the
    server's default (`ATTIMO_TRUST_BROWSER_IDENTITY`, off).
    """

    origins: Origins
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    trust_browser_identity: bool | None = None


class KeyBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Changes to one key: its allowed origins (public keys only) and its trust of browser identity."""

    origins: Origins | None = None
    trust_browser_identity: bool | None = None


class RotateKeyBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How long the old key keeps working after a rotation (absent: `ATTIMO_KEY_ROTATION_GRACE_S`)."""

    grace_s: Grace | None = None


class KeyPublic(msgspec.Struct, frozen=True):
    """A write key as listed: a public key in full, a secret key by its hint only."""

    id: str
    site: str
    kind: KeyKind
    key: str
    origins: list[str]
    trust_browser_identity: bool | None
    created_at: float
    expires_at: float | None


class KeysPage(msgspec.Struct, frozen=True):
    """Every write key."""

    data: list[KeyPublic]
    count: int


class KeyMade(msgspec.Struct, frozen=True):
    """A key just made (created or rotated): `key` in full, this once."""

    key: str
    record: KeyPublic


class SitePublic(msgspec.Struct, frozen=True):
    """A site as listed (no secret)."""

    id: Identifier
    name: str
    trust_browser_identity: bool | None
    created_at: float
    has_identity_secret: bool


class SitesPage(msgspec.Struct, frozen=True):
    """Every site."""

    data: list[SitePublic]
    count: int


class SiteCreated(msgspec.Struct, frozen=True):
    """A site just made, with its keys and identity secret in full (their only showing).

    The public key goes into the page; the secret key stays on the shop's
    server (HTTP Basic user for `/v1/batch`); the identity secret signs user
    ids on the server (`context.userHash`, decisions' `sig`).
    """

    site: SitePublic
    public_key: str
    secret_key: str
    identity_secret: str
    keys: list[KeyPublic]


class TokenBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new admin token: its scopes (at least one) and a name saying who holds it."""

    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=5)]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class TokenPublic(msgspec.Struct, frozen=True):
    """An admin token as listed: never the token, only its hint."""

    id: str
    name: str
    scopes: list[str]
    hint: str
    created_at: float


class TokensPage(msgspec.Struct, frozen=True):
    """Every admin token made through the API (the dev token is not among them)."""

    data: list[TokenPublic]
    count: int


class TokenMade(msgspec.Struct, frozen=True):
    """A token just made: `token` in full, this once."""

    token: str
    record: TokenPublic

"""Signed links in e-mails: the open pixel, link clicks and unsubscribe, each good for one contact and message.

A link carries its own claims (which action, contact and workflow it is
about) and an HMAC-SHA256 over them, the link's purpose and, for a click,
the destination URL — so no database holds the links, and nobody without
the secret can make one: not an open or an unsubscribe for another contact,
not a click that redirects anywhere Attimo did not put in an e-mail. A
token signed for one purpose is refused for another. Links do not expire
(an unsubscribe link must keep working); rotate the secret to revoke them.

Token: `base64url(claims as msgpack) "." base64url(first 16 bytes of the MAC)`.
The claims are only decoded after the MAC verifies.

The secret is `ATTIMO_EMAIL_LINK_SECRET` (several, comma-separated: the
first signs, any verifies), else one derived from the admin token: every
process that sends or serves these links has the admin token already, so it
works with no set-up, and the derivation (an HMAC with a fixed label) never
reveals the token. The price: a new admin token breaks the links of e-mails
already sent — hence the explicit setting for production.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import Final, Literal
from urllib.parse import quote

import msgspec

from api.email.errors import InvalidLinkError
from state.actions import Action
from state.settings import Settings

Purpose = Literal["open", "click", "unsubscribe"]

MAX_TOKEN_CHARS: Final = 2048
MAX_LINK_URL_CHARS: Final = 2048
ROUTE_PREFIX: Final = "/v1/email"
_MAC_BYTES: Final = 16
_LABEL: Final = b"attimo email links v1"


class LinkClaims(msgspec.Struct, frozen=True, kw_only=True, array_like=True, omit_defaults=True):
    """Who and what a link is about: the action (the e-mail), its contact and its workflow step.

    Compact, because the unsubscribe link must fit in one header line: the
    contact's user id is written only when it is not the contact id.
    """

    action_id: str
    contact_id: str
    known: bool
    workflow_id: str
    workflow_version: int
    step_id: str
    branch: str | None = None
    other_user_id: str | None = None

    @property
    def user_id(self) -> str | None:
        """The contact's user id when it had one (a known contact), else None (an anonymous visitor)."""
        return (self.other_user_id or self.contact_id) if self.known else None


_decoder: Final = msgspec.msgpack.Decoder(LinkClaims)
_encoder: Final = msgspec.msgpack.Encoder()


def claims_for(action: Action) -> LinkClaims:
    """The claims of every link in this action's e-mail."""
    contact = action.contact
    return LinkClaims(action_id=action.id, contact_id=contact.contact_id, known=contact.user_id is not None,
                      workflow_id=action.workflow_id, workflow_version=action.workflow_version,
                      step_id=action.step_id, branch=action.branch,
                      other_user_id=contact.user_id if contact.user_id != contact.contact_id else None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_secrets(settings: Settings) -> list[bytes]:
    """The keys links are signed with (first) and verified against (any), from the settings."""
    given = [part.strip() for part in settings.email_link_secret.split(",") if part.strip()]
    if given:
        return [part.encode() for part in given]
    return [hmac.new(settings.admin_token.encode(), _LABEL, hashlib.sha256).digest()]


class LinkSigner:
    """Makes and checks link tokens with a set of keys (the first signs)."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("at least one link secret is needed")
        self._secrets = list(secrets)

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        """The signer of this deployment's links."""
        return cls(link_secrets(settings))

    @staticmethod
    def _mac(secret: bytes, purpose: Purpose, payload: bytes, url: str) -> bytes:
        # Lengths first, so no (payload, url) pair can be re-split into another.
        target = url.encode("utf-8", "surrogatepass")
        message = b"%s\x00%d:%s%d:%s" % (purpose.encode(), len(payload), payload, len(target), target)
        return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, purpose: Purpose, claims: LinkClaims, url: str = "") -> str:
        """The token of a link for `purpose` (a click's token also covers its destination `url`)."""
        payload = _encoder.encode(claims)
        return f"{_b64(payload)}.{_b64(self._mac(self._secrets[0], purpose, payload, url))}"

    def verify(self, purpose: Purpose, token: str, url: str = "") -> LinkClaims:
        """The claims of a token Attimo signed for this purpose (and URL); InvalidLinkError otherwise."""
        encoded_payload, dot, encoded_mac = token.partition(".")
        if not dot or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise InvalidLinkError("unknown or altered link")
        try:
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except (binascii.Error, ValueError) as exc:
            raise InvalidLinkError("unknown or altered link") from exc
        if _b64(payload) != encoded_payload or _b64(mac) != encoded_mac:
            # One spelling per token (base64 tolerates stray bits and characters), so the
            # event id derived from the token cannot be multiplied by re-spelling it.
            raise InvalidLinkError("unknown or altered link")
        if not any(hmac.compare_digest(mac, self._mac(secret, purpose, payload, url)) for secret in self._secrets):
            raise InvalidLinkError("unknown or altered link")
        try:
            return _decoder.decode(payload)
        except msgspec.DecodeError as exc:  # signed by us, so only an incompatible older format gets here
            raise InvalidLinkError("link of an unknown format") from exc


def open_url(base: str, token: str) -> str:
    """The tracking pixel's address."""
    return f"{base.rstrip('/')}{ROUTE_PREFIX}/open/{token}.gif"


def click_url(base: str, token: str, url: str) -> str:
    """The address a link to `url` is rewritten to."""
    return f"{base.rstrip('/')}{ROUTE_PREFIX}/click/{token}?u={quote(url, safe='')}"


def unsubscribe_url(base: str, token: str) -> str:
    """The unsubscribe page (GET) and one-click unsubscribe (POST) address."""
    return f"{base.rstrip('/')}{ROUTE_PREFIX}/unsubscribe/{token}"

"""Identity verification: a signed-in user's decisions are served only to a page that proves who it is.

The write key is public, so anyone could otherwise ask for any user id's
decisions. The shop's back end, which knows who is logged in, signs the user
id with a secret Attimo shares (`ATTIMO_IDENTITY_SECRETS`) and renders the
signature into the page; the tracker passes it as `sig`. The signature is
the lowercase hex HMAC-SHA256 of the user id (UTF-8) — the recipe Intercom
and others use, so a shop's back end may already have it. Several secrets
may verify at once, so one can be rotated without logging anyone out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

from api.errors import IdentityRequiredError, InvalidSignatureError
from state.settings import Settings

SIGNATURE_PARAM: Final = "sig"
"""The query parameter (decisions route, websocket handshake) that carries the signature."""
SIGNATURE_HEADER: Final = "X-Attimo-Signature"
"""The header that may carry it instead on the decisions route."""
USER_PARAM: Final = "uid"
"""The websocket handshake parameter naming the user id `sig` signs."""
# A SHA-256 hex digest; anything longer is not compared (nor hashed) at all.
_SIG_LENGTH: Final = 64


def sign_user_id(secret: str | bytes, user_id: str) -> str:
    """The signature a shop's back end gives its page for `user_id` (hex HMAC-SHA256)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()


class IdentityVerifier:
    """Checks user-id signatures against every configured secret (any may match: rotation)."""

    def __init__(self, secrets: Sequence[str | bytes]) -> None:
        self._secrets = [s.encode() if isinstance(s, str) else s for s in secrets if s]

    @classmethod
    def from_settings(cls, settings: Settings) -> IdentityVerifier:
        """The verifier for `ATTIMO_IDENTITY_SECRETS` (comma-separated)."""
        return cls([part.strip() for part in settings.identity_secrets.split(",") if part.strip()])

    @property
    def configured(self) -> bool:
        """Whether any secret is set (without one, no user's decisions are served)."""
        return bool(self._secrets)

    def valid(self, user_id: str, sig: str | None, site_secrets: Sequence[str] = ()) -> bool:
        """Whether `sig` signs `user_id` under one of the secrets, or of the site's (constant time per secret)."""
        if not sig or len(sig) != _SIG_LENGTH:
            return False
        given = sig.lower().encode("ascii", "replace")
        message = user_id.encode()
        keys = [*self._secrets, *(s.encode() for s in site_secrets if s)] if site_secrets else self._secrets
        return any(hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest().encode(), given)
                   for key in keys)

    def check(self, user_id: str, sig: str | None, site_secrets: Sequence[str] = ()) -> None:
        """Raise unless `sig` proves `user_id`: 401 when it is missing, 403 when it is wrong."""
        if not sig:
            raise IdentityRequiredError(
                "these decisions belong to a signed-in user: pass the user id's signature as `sig` "
                "(hex HMAC-SHA256 of the user id with an ATTIMO_IDENTITY_SECRETS secret)")
        if not self.valid(user_id, sig, site_secrets):
            raise InvalidSignatureError("`sig` is not a valid signature of this contact's user id")

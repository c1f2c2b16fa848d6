"""Standard Webhooks signatures: `whsec_` secrets and the `webhook-signature` header.

A secret is `whsec_` followed by the base64 of 24 to 64 random bytes (the
spec's range; Attimo generates 32). The signed content is
`{webhook-id}.{webhook-timestamp}.{body}` and a signature is `v1,` plus the
base64 of its HMAC-SHA256 under the secret's bytes. While a secret is being
rotated the header carries one signature per secret, space-separated, so a
receiver holding either verifies the webhook.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Final

from api.dispatcher.errors import InvalidSecretError

PREFIX: Final = "whsec_"
GENERATED_BYTES: Final = 32
MIN_BYTES: Final = 24
MAX_BYTES: Final = 64


def new_secret() -> str:
    """A fresh random signing secret."""
    return PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for; InvalidSecretError if it is not one."""
    if not secret.startswith(PREFIX):
        raise InvalidSecretError(f"a webhook secret starts with {PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecretError("a webhook secret is whsec_ followed by base64") from exc
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise InvalidSecretError(f"a webhook secret holds {MIN_BYTES} to {MAX_BYTES} bytes, this one {len(key)}")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of a webhook."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def signature_header(secrets_in_force: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: a signature per secret in force, space-separated."""
    return " ".join(signature(secret_key(s), msg_id, timestamp, body) for s in secrets_in_force)

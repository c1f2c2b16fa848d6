"""Sending an e-mail action through the configured SMTP server, and what the outcome means for a retry.

The dispatcher calls `send_email` for each action of kind `email`, with the
same retry and dead-letter handling as webhooks; this module only decides
whether an attempt succeeded, should be retried or can never succeed:

| what happened | outcome |
|---|---|
| the server accepted the message (2xx after the data) | `delivered` |
| connection refused or lost, TLS handshake failed, DNS failure | `retry` |
| nothing within `ATTIMO_SMTP_TIMEOUT_S` (the whole exchange) | `retry` |
| a 4xx reply (greylisting, mailbox busy, rate limit, temporary auth failure) | `retry` |
| a 5xx reply (no such user, relaying denied, rejected content, bad credentials) | `permanent` |
| no SMTP host or From address, no or malformed recipient | `permanent` |
| the server cannot do what the settings require (STARTTLS, SMTPUTF8) | `permanent` |

Exactly once, as far as SMTP allows: every attempt at one action is the
same message (same Message-ID); an attempt whose final reply is lost (a
timeout after the data was sent) is retried, and the recipient may then
get the message twice — mail clients collapse copies with one Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import aiosmtplib

from api.email.errors import UnsendableEmailError
from api.email.links import LinkSigner
from api.email.message import build_message, envelope, wire_bytes
from api.email.result import EmailResult
from api.logging import log
from state.actions import Action
from state.settings import Settings

logger: Final = logging.getLogger("attimo.email")


def _by_code(code: int, message: str) -> EmailResult:
    reason = f"SMTP {code}: {message}".strip()
    if 500 <= code < 600:
        return EmailResult("permanent", reason, code)
    return EmailResult("retry", reason, code)


def classify(exc: Exception, timeout_s: float) -> EmailResult:
    """What a failed SMTP attempt means: retry later (temporary) or give up (permanent)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return _by_code(refused.code, f"recipient {refused.recipient} refused: {refused.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, exc.message)
    if isinstance(exc, TimeoutError):  # asyncio's deadline and aiosmtplib's SMTPTimeoutError alike
        return EmailResult("retry", f"no answer within {timeout_s:g} s: {exc}".rstrip(": "))
    if isinstance(exc, OSError):  # refused, unreachable, disconnected, TLS failure
        return EmailResult("retry", f"connection failed: {exc}")
    # SMTPNotSupported and the plain SMTPException (e.g. no STARTTLS): the server lacks what we require.
    return EmailResult("permanent", f"the SMTP server cannot send this as configured: {exc}")


async def send_email(action: Action, settings: Settings) -> EmailResult:
    """Send an e-mail action through SMTP: delivered, retry later, or permanent failure, with the reason."""
    if not settings.smtp_host:
        return EmailResult("permanent", "no SMTP server is configured (ATTIMO_SMTP_HOST)")
    try:
        message = build_message(action, settings, LinkSigner.from_settings(settings))
        sender, recipient = envelope(message)
    except UnsendableEmailError as exc:
        return EmailResult("permanent", str(exc))
    try:
        async with asyncio.timeout(settings.smtp_timeout_s):
            _, reply = await aiosmtplib.send(
                wire_bytes(message), sender=sender, recipients=[recipient],
                hostname=settings.smtp_host, port=settings.smtp_port,
                username=settings.smtp_username or None, password=settings.smtp_password or None,
                use_tls=settings.smtp_tls == "implicit", start_tls=settings.smtp_tls == "starttls",
                timeout=settings.smtp_timeout_s)
    except (aiosmtplib.SMTPException, OSError) as exc:
        result = classify(exc, settings.smtp_timeout_s)
        log(logger, logging.WARNING, "e-mail not sent", action_id=action.id, outcome=result.outcome,
            reason=result.reason)
        return result
    log(logger, logging.DEBUG, "e-mail sent", action_id=action.id, reply=reply)
    return EmailResult("delivered", reply)

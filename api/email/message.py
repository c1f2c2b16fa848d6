"""An e-mail action as a MIME message: headers, text and HTML alternatives, Attimo's links.

The `Message-ID` is the action id, so every attempt at one action is the
same message (mail clients show a duplicate once); `List-Unsubscribe` with
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058) gives mail
clients their unsubscribe button, which posts to Attimo's unsubscribe route.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from typing import Final

from api.email import links, tracking
from api.email.errors import UnsendableEmailError
from state.actions import Action
from state.settings import Settings
from state.templates import UNSUBSCRIBE_URL_MARKER

# RFC 5322 atext without "=", which quotes every other character as =XX (so distinct ids stay distinct).
_ATEXT: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/?^_`{|}~")
_HEADERS: Final = HeaderRegistry()
_WIRE: Final = email.policy.SMTP.clone(max_line_length=998)
_DOMAIN: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def message_id(action_id: str, domain: str) -> str:
    """`<action-id@domain>`, the action id quoted where RFC 5322 needs it: the same id, the same Message-ID."""
    local = "".join(ch if ch in _ATEXT else "".join(f"={byte:02X}" for byte in ch.encode()) for ch in action_id)
    return f"<{local}@{domain}>"


def _address(text: str, what: str) -> Address:
    """Exactly one well-formed mailbox; UnsendableEmailError for anything else (several, none, line breaks)."""
    try:
        header = _HEADERS("to", text)
        found: tuple[Address, ...] = header.addresses  # type: ignore[attr-defined]
    except (ValueError, IndexError) as exc:  # the parser raises on some malformed input ("x@")
        raise UnsendableEmailError(f"{what} {text!r} is not an e-mail address") from exc
    if header.defects or len(found) != 1 or not found[0].username or not found[0].domain:
        raise UnsendableEmailError(f"{what} {text!r} is not one well-formed e-mail address")
    return found[0]


def build_message(action: Action, settings: Settings, signer: links.LinkSigner) -> EmailMessage:
    """The message for an e-mail action, ready for SMTP; UnsendableEmailError if it can never be one."""
    content = action.email
    if action.kind != "email" or content is None:
        raise UnsendableEmailError(f"action {action.id} is not an e-mail (kind {action.kind!r}, no content)")
    if not settings.smtp_from:
        raise UnsendableEmailError("no From address is configured (ATTIMO_SMTP_FROM)")
    sender = _address(settings.smtp_from, "ATTIMO_SMTP_FROM")
    recipient = _address(content.to, "recipient")
    domain = sender.domain if _DOMAIN.fullmatch(sender.domain) else "attimo.invalid"

    base = settings.api_url
    claims = links.claims_for(action)
    unsubscribe = links.unsubscribe_url(base, signer.sign("unsubscribe", claims))

    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    # One line, whatever the template produced: a value can never add a header.
    message["Subject"] = " ".join(content.subject.replace(UNSUBSCRIBE_URL_MARKER, "").split())
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = message_id(action.id, domain)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable: 7-bit clean, and no line over SMTP's 998 characters whatever the template.
    message.set_content(tracking.add_unsubscribe(content.text, unsubscribe, is_html=False), cte="quoted-printable")
    if content.html is not None:
        body = tracking.rewrite_links(
            content.html, lambda url: links.click_url(base, signer.sign("click", claims, url), url))
        body = tracking.add_unsubscribe(body, unsubscribe, is_html=True)
        body = tracking.add_pixel(body, links.open_url(base, signer.sign("open", claims)))
        message.add_alternative(body, subtype="html", cte="quoted-printable")
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as sent: CRLF lines, headers folded at 998 characters, not 78.

    At 78, Python would rewrite a long `List-Unsubscribe` URL as RFC 2047
    encoded words, which mail clients do not decode there (RFC 2369 wants the
    bare `<URL>`); the claims are kept compact so the URL fits one line.
    """
    return message.as_bytes(policy=_WIRE)


def envelope(message: EmailMessage) -> tuple[str, str]:
    """(MAIL FROM, RCPT TO) of a built message: its From and To addresses."""
    sender: Address = message["From"].addresses[0]
    recipient: Address = message["To"].addresses[0]
    return sender.addr_spec, recipient.addr_spec

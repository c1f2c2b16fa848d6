"""A real SMTP server on loopback (aiosmtpd) that records what it receives, and e-mail actions to send."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from state.actions import Action, ActionContact, EmailContent
from state.profile import CartLine
from state.settings import Settings
from tests.helpers import free_port

USERNAME = "shop"
PASSWORD = "s3cret"
HTML = ('<html><body><p>Hi Ada, your cart is waiting.</p>'
        '<a href="https://shop.example/cart?utm_source=email&amp;step=1">Back to your cart</a> '
        "<a href='http://shop.example/sku-1'>Trail shoe</a> "
        '<a href="mailto:help@shop.example">Help</a> <a href="#top">Top</a> <a href="/relative">Rel</a>'
        "</body></html>")


@dataclass
class Mailbox:
    """What the server received; `replies` makes it answer RCPT TO for an address with a given reply."""

    received: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # each RCPT TO answered from `replies`

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.replies.get(address)
        if reply is not None:
            self.refused.append(address)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        self.raw.append(envelope.original_content)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 queued as 42"


@dataclass
class SmtpServer:
    """A running aiosmtpd on 127.0.0.1 and its mailbox."""

    port: int
    mailbox: Mailbox


def _check_password(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USERNAME.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """aiosmtpd on a free loopback port (plain SMTP, no STARTTLS), accepting everyone without a password."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.port, mailbox)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server_with_login() -> Iterator[SmtpServer]:
    """aiosmtpd that requires AUTH LOGIN/PLAIN as shop / s3cret (allowed without TLS, on loopback only)."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), authenticator=_check_password,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        yield SmtpServer(controller.port, mailbox)
    finally:
        controller.stop()


def mail_settings(port: int, **overrides: Any) -> Settings:
    """Settings that send through the local server with no TLS and sign links with a fixed secret."""
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "none", "smtp_from": "Shop <news@shop.example>",
        "smtp_timeout_s": 5.0, "email_link_secret": "test-link-secret", "api_public_url": "https://attimo.example",
        "admin_token": "adm-email", "redis_url": "redis://127.0.0.1:1/0", **overrides}
    return Settings(**values)


def email_action(action_id: str = "act-0001", to: str = "ada@example.com", html: str | None = HTML,
                 contact_id: str = "user-7", user_id: str | None = "user-7", subject: str = "Your cart is waiting",
                 branch: str | None = None) -> Action:
    """An e-mail action as a workflow decides it: rendered content, contact, workflow step."""
    contact = ActionContact(contact_id=contact_id, user_id=user_id, anonymous_ids=["anon-7"], email=to)
    return Action(id=action_id, kind="email", channel="email", contact=contact, workflow_id="abandoned-cart",
                  workflow_version=2, step_id="reminder-1", branch=branch, created_at=1_700_000_000.0,
                  cart=[CartLine(product_id="sku-1", name="Trail shoe", price=59.0)],
                  email=EmailContent(to=to, subject=subject, text="Hi Ada, your cart: https://shop.example/cart",
                                     html=html))

"""`send_email` through a real SMTP server on loopback: the message that arrives, and what each failure means."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import aiosmtplib
import msgspec
import pytest

from api.email import EmailResult, send_email
from api.email.links import LinkSigner
from api.email.message import message_id
from api.email.sender import classify
from state.templates import UNSUBSCRIBE_URL_MARKER
from tests.api.email.conftest import PASSWORD, USERNAME, SmtpServer, email_action, mail_settings
from tests.helpers import free_port

BASE = "https://attimo.example/v1/email"


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML alternatives of a received message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


class TestTheMessageThatArrives:
    """One e-mail action becomes one message with everything Attimo promises in it."""

    async def test_delivered_with_headers_from_the_action_and_the_settings(self, smtp_server: SmtpServer) -> None:
        """From, To, Subject and a Message-ID made of the action id at the From domain."""
        result = await send_email(email_action(), mail_settings(smtp_server.port))
        assert result == EmailResult("delivered", result.reason) and result.delivered
        (message,) = smtp_server.mailbox.received
        assert message["From"] == "Shop <news@shop.example>" and message["To"] == "ada@example.com"
        assert message["Subject"] == "Your cart is waiting"
        assert message["Message-ID"] == "<act-0001@shop.example>"
        assert message["Date"]
        assert smtp_server.mailbox.envelopes == [("news@shop.example", ["ada@example.com"])]

    async def test_a_resend_is_the_same_message(self, smtp_server: SmtpServer) -> None:
        """Sending one action twice gives one Message-ID, so mail clients show it once."""
        settings = mail_settings(smtp_server.port)
        await send_email(email_action(), settings)
        await send_email(email_action(), settings)
        first, second = smtp_server.mailbox.received
        assert first["Message-ID"] == second["Message-ID"]
        assert parts(first) == parts(second)

    def test_message_ids_are_valid_and_distinct_for_any_action_id(self) -> None:
        """Characters RFC 5322 does not allow are quoted, so two ids never share a Message-ID."""
        assert message_id("wf:abandoned/3 step.1", "shop.example") == "<wf=3Aabandoned/3=20step=2E1@shop.example>"
        assert message_id("a=3A", "d") != message_id("a:", "d")

    async def test_plain_text_and_html_alternatives(self, smtp_server: SmtpServer) -> None:
        """multipart/alternative with the rendered text and the rendered HTML."""
        await send_email(email_action(), mail_settings(smtp_server.port))
        (message,) = smtp_server.mailbox.received
        assert message.get_content_type() == "multipart/alternative"
        text, html = parts(message)
        assert text.startswith("Hi Ada, your cart: https://shop.example/cart")
        assert "<p>Hi Ada, your cart is waiting.</p>" in html

    async def test_a_text_only_email_has_no_html_part_and_no_pixel(self, smtp_server: SmtpServer) -> None:
        await send_email(email_action(html=None), mail_settings(smtp_server.port))
        (message,) = smtp_server.mailbox.received
        assert message.get_content_type() == "text/plain"
        assert "/open/" not in message.get_content()

    async def test_list_unsubscribe_headers_point_at_the_signed_unsubscribe_route(self,
                                                                                 smtp_server: SmtpServer) -> None:
        """RFC 8058 one-click: a https URL in List-Unsubscribe and List-Unsubscribe-Post."""
        settings = mail_settings(smtp_server.port)
        await send_email(email_action(), settings)
        (message,) = smtp_server.mailbox.received
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        header = str(message["List-Unsubscribe"])
        match = re.fullmatch(rf"<{BASE}/unsubscribe/([^>]+)>", header)
        assert match, header
        claims = LinkSigner.from_settings(settings).verify("unsubscribe", match.group(1))
        assert claims.action_id == "act-0001" and claims.contact_id == "user-7"

    async def test_list_unsubscribe_is_one_bare_url_on_the_wire_even_for_the_longest_ids(
            self, smtp_server: SmtpServer) -> None:
        """Mail clients read `List-Unsubscribe: <URL>` as sent: never RFC 2047-encoded, never over 998 characters."""
        longest = "c" * 200  # the longest contact id the ingest validator lets in
        action = email_action(action_id="act_" + "f" * 32, contact_id=longest, user_id=longest,
                              branch="b" * 100)
        action = msgspec.structs.replace(action, workflow_id="w" * 100, step_id="s" * 100)
        await send_email(action, mail_settings(smtp_server.port))
        (raw,) = smtp_server.mailbox.raw
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        (line,) = [line for line in head.split("\r\n") if line.startswith("List-Unsubscribe:")]
        assert re.fullmatch(rf"List-Unsubscribe: <{BASE}/unsubscribe/[A-Za-z0-9_.-]+>", line), line
        assert len(line) <= 998

    async def test_no_line_on_the_wire_is_longer_than_smtp_allows_and_bodies_are_7_bit(
            self, smtp_server: SmtpServer) -> None:
        """A template with a 5 000-character line and non-ASCII text still travels intact."""
        html = "<html><body><p>" + "Grüße, " * 700 + "</p></body></html>"
        await send_email(email_action(html=html, subject="Grüße 👋"), mail_settings(smtp_server.port))
        (raw,) = smtp_server.mailbox.raw
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        assert raw.isascii()
        (message,) = smtp_server.mailbox.received
        assert message["Subject"] == "Grüße 👋"
        assert "Grüße, " * 700 in parts(message)[1]

    async def test_every_body_carries_an_unsubscribe_link(self, smtp_server: SmtpServer) -> None:
        """Without `{{unsubscribe_url}}` in the template, a footer in both parts has the same link."""
        await send_email(email_action(), mail_settings(smtp_server.port))
        (message,) = smtp_server.mailbox.received
        text, html = parts(message)
        url = str(message["List-Unsubscribe"])[1:-1]
        assert f"Unsubscribe from these e-mails: {url}" in text
        assert f'<a href="{url}">Unsubscribe</a>' in html

    async def test_the_unsubscribe_link_goes_where_the_template_put_it(self, smtp_server: SmtpServer) -> None:
        html = f'<html><body><a href="{UNSUBSCRIBE_URL_MARKER}">Stop these</a></body></html>'
        await send_email(email_action(html=html), mail_settings(smtp_server.port))
        (message,) = smtp_server.mailbox.received
        _, body = parts(message)
        url = str(message["List-Unsubscribe"])[1:-1]
        assert f'<a href="{url}">Stop these</a>' in body
        assert "Unsubscribe</a> from these e-mails" not in body and UNSUBSCRIBE_URL_MARKER not in body

    async def test_a_tracking_pixel_for_this_email_ends_the_html(self, smtp_server: SmtpServer) -> None:
        settings = mail_settings(smtp_server.port)
        await send_email(email_action(), settings)
        (message,) = smtp_server.mailbox.received
        _, html = parts(message)
        match = re.search(rf'<img src="{BASE}/open/([^"]+)\.gif" width="1" height="1"[^>]*></body>', html)
        assert match, html
        assert LinkSigner.from_settings(settings).verify("open", match.group(1)).action_id == "act-0001"

    async def test_every_web_link_in_the_html_goes_through_the_signed_click_redirect(
            self, smtp_server: SmtpServer) -> None:
        """http(s) links become click links whose token signs the original URL; mailto, anchors and relative
        links stay as written."""
        settings = mail_settings(smtp_server.port)
        await send_email(email_action(), settings)
        (message,) = smtp_server.mailbox.received
        _, html = parts(message)
        clicks = [href for href in hrefs(html) if href.startswith(f"{BASE}/click/")]
        destinations = []
        for href in clicks:
            split = urlsplit(href.replace("&amp;", "&"))
            (url,) = parse_qs(split.query)["u"]
            token = split.path.rsplit("/", 1)[1]
            assert LinkSigner.from_settings(settings).verify("click", token, url).action_id == "act-0001"
            destinations.append(url)
        assert destinations == ["https://shop.example/cart?utm_source=email&step=1", "http://shop.example/sku-1"]
        assert {"mailto:help@shop.example", "#top", "/relative"} <= set(hrefs(html))
        assert "https://shop.example/cart?" not in html.replace(f"{BASE}/click/", "")

    async def test_the_plain_text_part_keeps_its_links(self, smtp_server: SmtpServer) -> None:
        await send_email(email_action(), mail_settings(smtp_server.port))
        text, _ = parts(smtp_server.mailbox.received[0])
        assert "/click/" not in text

    async def test_a_subject_with_line_breaks_adds_no_header(self, smtp_server: SmtpServer) -> None:
        await send_email(email_action(subject="Hi\r\nBcc: victim@example.com"), mail_settings(smtp_server.port))
        (message,) = smtp_server.mailbox.received
        assert message["Bcc"] is None and message["Subject"] == "Hi Bcc: victim@example.com"
        assert smtp_server.mailbox.envelopes[0][1] == ["ada@example.com"]

    @pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
    async def test_credentials_are_used_when_the_server_requires_them(self,
                                                                     smtp_server_with_login: SmtpServer) -> None:
        """AUTH with the configured username and password; a wrong password (535) is permanent."""
        port = smtp_server_with_login.port
        ok = await send_email(email_action(), mail_settings(port, smtp_username=USERNAME, smtp_password=PASSWORD))
        assert ok.delivered, ok
        wrong = await send_email(email_action(), mail_settings(port, smtp_username=USERNAME, smtp_password="x"))
        assert wrong.permanent and wrong.smtp_code == 535, wrong
        assert len(smtp_server_with_login.mailbox.received) == 1


class TestOutcomes:
    """What the dispatcher is told: delivered, retry later (temporary) or permanent, with a reason."""

    async def test_a_4xx_reply_is_retry_later(self, smtp_server: SmtpServer) -> None:
        smtp_server.mailbox.replies["ada@example.com"] = "450 4.2.1 Mailbox busy, try later"
        result = await send_email(email_action(), mail_settings(smtp_server.port))
        assert result.retry and result.smtp_code == 450 and "Mailbox busy" in result.reason
        assert smtp_server.mailbox.received == []

    async def test_a_5xx_reply_is_permanent(self, smtp_server: SmtpServer) -> None:
        smtp_server.mailbox.replies["ada@example.com"] = "550 5.1.1 No such user"
        result = await send_email(email_action(), mail_settings(smtp_server.port))
        assert result.permanent and result.smtp_code == 550 and "No such user" in result.reason

    async def test_a_refused_connection_is_retry_later(self) -> None:
        result = await send_email(email_action(), mail_settings(free_port()))
        assert result.retry and result.smtp_code is None and "connection" in result.reason.lower()

    async def test_a_server_that_never_answers_is_retry_later_within_the_timeout(self) -> None:
        """The timeout bounds the whole exchange, so a dispatcher's claim can outlast it."""
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            started = asyncio.get_running_loop().time()
            result = await send_email(email_action(), mail_settings(port, smtp_timeout_s=0.5))
            elapsed = asyncio.get_running_loop().time() - started
        assert result.retry and "0.5 s" in result.reason
        assert elapsed < 2

    async def test_starttls_required_but_not_offered_is_permanent_and_nothing_is_sent_in_clear(
            self, smtp_server: SmtpServer) -> None:
        """The default TLS mode never falls back to plain text."""
        result = await send_email(email_action(), mail_settings(smtp_server.port, smtp_tls="starttls"))
        assert result.permanent and "STARTTLS" in result.reason
        assert smtp_server.mailbox.received == []

    @pytest.mark.parametrize("to", ["", "not-an-address", "a@b.example, c@d.example", "x@", "a@b.example\r\nBcc: c@d"])
    async def test_no_usable_recipient_is_permanent(self, smtp_server: SmtpServer, to: str) -> None:
        result = await send_email(email_action(to=to), mail_settings(smtp_server.port))
        assert result.permanent and "recipient" in result.reason
        assert smtp_server.mailbox.received == []

    async def test_an_action_without_email_content_is_permanent(self, smtp_server: SmtpServer) -> None:
        action = email_action()
        result = await send_email(msgspec.structs.replace(action, email=None), mail_settings(smtp_server.port))
        assert result.permanent and "not an e-mail" in result.reason

    async def test_without_smtp_settings_every_email_is_permanent_naming_the_setting(self) -> None:
        result = await send_email(email_action(), mail_settings(25, smtp_host=""))
        assert result.permanent and "ATTIMO_SMTP_HOST" in result.reason
        no_from = await send_email(email_action(), mail_settings(25, smtp_from=""))
        assert no_from.permanent and "ATTIMO_SMTP_FROM" in no_from.reason

    def test_reply_codes_decide_between_retry_and_permanent(self) -> None:
        assert classify(aiosmtplib.SMTPSenderRefused(451, "local error", "a@b"), 15).retry
        assert classify(aiosmtplib.SMTPDataError(554, "spam"), 15).permanent
        assert classify(aiosmtplib.SMTPAuthenticationError(454, "temporary auth failure"), 15).retry
        assert classify(aiosmtplib.SMTPServerDisconnected("gone"), 15).retry
        assert classify(aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported"), 15).permanent


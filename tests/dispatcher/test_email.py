"""E-mail actions go through the same dispatcher: SMTP (`api.email`), the same order, retries and dead letters."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from benchmarks.webhook_receiver import WebhookReceiver
from tests.api.email.conftest import SmtpServer, email_action, smtp_server  # noqa: F401 (the fixture)
from tests.dispatcher.conftest import (
    ADMIN,
    DispatcherFactory,
    action,
    create_endpoint,
    queue,
    wait_delivered,
    wait_quiet,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(60)

ADDRESS = "ada@example.com"


def smtp(port: int) -> dict[str, str]:
    return {"smtp_host": "127.0.0.1", "smtp_port": str(port), "smtp_tls": "none",
            "smtp_from": "Shop <news@shop.example>", "smtp_timeout_s": "1", "email_link_secret": "k"}


class TestEmailActions:
    """An e-mail is one more kind of action: delivered once, in its contact's order, or dead-lettered."""

    def test_a_contacts_webhook_waits_until_its_earlier_email_is_accepted(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            smtp_server: SmtpServer, dispatchers: DispatcherFactory) -> None:  # noqa: F811
        smtp_server.mailbox.replies[ADDRESS] = "451 4.7.1 greylisted, try again later"
        create_endpoint(admin, receiver.url)
        dispatchers(webhook_retry_schedule="0.3s" + ",0.3s" * 9, **smtp(smtp_server.port))
        queue(redis_client, email_action("act-mail", to=ADDRESS, contact_id="ada", user_id="ada"),
              action("hook", contact="ada"))
        wait_for(lambda: len(smtp_server.mailbox.refused) >= 2, 15, "two greylisted attempts")
        assert receiver.attempts() == [] and smtp_server.mailbox.received == []

        del smtp_server.mailbox.replies[ADDRESS]
        wait_delivered(receiver, {"act-hook"})
        (message,) = smtp_server.mailbox.received
        assert "act-mail" in message["Message-ID"] and message["To"] == ADDRESS
        wait_quiet(redis_client)
        rows = {r["target"]: r for r in admin.get("/v1/admin/webhooks/stats", headers=ADMIN).json()["data"]}
        assert rows["email"]["delivered"] == 1 and rows["email"]["failed_attempts"] >= 2
        assert rows["webhook:shop"]["delivered"] == 1

    def test_a_refused_recipient_is_dead_lettered_at_once(
            self, redis_client: redis.Redis, admin: TestClient, smtp_server: SmtpServer,  # noqa: F811
            dispatchers: DispatcherFactory) -> None:
        smtp_server.mailbox.replies[ADDRESS] = "550 5.1.1 no such user"
        dispatchers(**smtp(smtp_server.port))
        queue(redis_client, email_action("act-mail", to=ADDRESS, contact_id="ada", user_id="ada"))

        def letters() -> list[dict[str, object]]:
            return list(admin.get("/v1/admin/webhooks/dead-letters", headers=ADMIN).json()["data"])

        wait_for(letters, 15, "the dead letter")
        (letter,) = letters()
        assert letter["target"] == "email" and letter["attempts"] == 1 and letter["last_status"] == 550
        assert "no such user" in str(letter["reason"])

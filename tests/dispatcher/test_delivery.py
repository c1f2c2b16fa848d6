"""Webhook delivery by a real `attimo dispatcher` process to a real receiver, verified with `standardwebhooks`.

Each test configures an endpoint through the admin API, appends actions to
the outbox as the dataflow does, and reads what the receiver logged: every
attempt's headers and body, when it came, how it was answered.
"""

from __future__ import annotations

import time
from itertools import pairwise

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.dispatcher.records import EndpointSecret, WebhookEndpoint, encode
from benchmarks.webhook_receiver import Reply, WebhookReceiver
from state import keys
from state.profile import CartLine
from tests.dispatcher.conftest import (
    ADMIN,
    DispatcherFactory,
    action,
    admin_client,
    create_endpoint,
    queue,
    wait_delivered,
    wait_quiet,
)
from tests.helpers import RedisServer, wait_for

pytestmark = pytest.mark.timeout(60)


def assert_counts(admin: TestClient, **expected: int) -> None:
    """The endpoint's delivery counters (`/v1/admin/webhooks/stats`) include these values."""
    rows = admin.get("/v1/admin/webhooks/stats", headers=ADMIN).json()["data"]
    counts = next(r for r in rows if r["target"] == "webhook:shop")
    assert {name: counts[name] for name in expected} == expected


def dead_letters(admin: TestClient) -> list[dict[str, object]]:
    answer = admin.get("/v1/admin/webhooks/dead-letters", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


class TestStandardWebhooks:
    """What a receiver gets: the spec's headers, a signature the reference verifier accepts, the action."""

    def test_a_webhook_carries_the_action_signed_as_the_spec_says(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        secret = create_endpoint(admin, receiver.url)
        dispatchers()
        sent = action(1, cart=[CartLine(product_id="sku-1", name="Trail shoe", price=59.0)],
                      payload={"coupon": "WELCOME10"})
        queue(redis_client, sent)
        wait_delivered(receiver, {"act-1"})

        (attempt,) = receiver.attempts()
        body = Webhook(secret).verify(attempt.body, attempt.headers)
        assert attempt.headers["webhook-id"] == "act-1"
        assert abs(int(attempt.headers["webhook-timestamp"]) - time.time()) < 10
        assert attempt.headers["webhook-signature"].startswith("v1,")
        assert attempt.headers["content-type"] == "application/json"
        assert body["type"] == "workflow.action" and body["timestamp"].endswith("Z")
        assert msgspec.convert(body["data"], type(sent)) == sent
        wait_quiet(redis_client)
        assert_counts(admin, attempts=1, delivered=1, retrying=0, dead=0)
        assert not redis_client.exists(keys.delivery_state("act-1"))

    def test_a_tampered_body_or_another_secret_does_not_verify(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        secret = create_endpoint(admin, receiver.url)
        dispatchers()
        queue(redis_client, action(1))
        wait_delivered(receiver, {"act-1"})
        (attempt,) = receiver.attempts()
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(attempt.body.replace(b"ada", b"eve"), attempt.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(attempt.body, attempt.headers)


class TestRetries:
    """Failed attempts are retried on the schedule; `Retry-After` pushes the next one back."""

    def test_a_failed_attempt_is_retried_until_it_succeeds_with_the_same_id(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        receiver.answer = lambda _id, nth: Reply(500 if nth < 3 else 200)
        secret = create_endpoint(admin, receiver.url)
        dispatchers(webhook_retry_schedule="0.5s,0.5s,0.5s")
        queue(redis_client, action(1))
        wait_delivered(receiver, {"act-1"})

        attempts = receiver.attempts()
        assert [a.status for a in attempts] == [500, 500, 200]
        assert {a.headers["webhook-id"] for a in attempts} == {"act-1"}
        gaps = [b.received_at - a.answered_at for a, b in pairwise(attempts)]
        assert all(gap >= 0.45 for gap in gaps), gaps
        for attempt in attempts:  # each attempt is signed afresh with its own timestamp
            Webhook(secret).verify(attempt.body, attempt.headers)
        wait_quiet(redis_client)
        assert_counts(admin, delivered=1, failed_attempts=2, attempts=3, retrying=0)

    @pytest.mark.parametrize("status", [429, 503])
    def test_retry_after_is_honoured(self, status: int, redis_client: redis.Redis, admin: TestClient,
                                     receiver: WebhookReceiver, dispatchers: DispatcherFactory) -> None:
        """The schedule says 0.1 s; the receiver asks for 2 s (followed up to the schedule's longest delay, 3 s)."""
        receiver.answer = lambda _id, nth: Reply(status, {"Retry-After": "2"}) if nth == 1 else Reply(200)
        create_endpoint(admin, receiver.url)
        dispatchers(webhook_retry_schedule="0.1s,3s")
        queue(redis_client, action(1))
        wait_delivered(receiver, {"act-1"})
        first, second = receiver.attempts()
        assert second.received_at - first.answered_at >= 1.95

    def test_a_restarted_dispatcher_continues_the_schedule_instead_of_starting_it_over(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        """Attempts and the next attempt time are in Redis: kill -9 loses neither."""
        receiver.answer = lambda _id, _nth: Reply(500)
        create_endpoint(admin, receiver.url)
        first = dispatchers("first", webhook_retry_schedule="0.2s,6s,0.2s")
        queue(redis_client, action(1))
        wait_for(lambda: len(receiver.attempts()) == 2, 10, "two attempts")
        first.kill_hard()
        second_attempt = receiver.attempts()[1]
        dispatchers("second", webhook_retry_schedule="0.2s,6s,0.2s")
        wait_for(lambda: dead_letters(admin), 20, "the dead letter")

        attempts = receiver.attempts()
        assert len(attempts) == 4  # not 4 more: the schedule went on where it was
        assert attempts[2].received_at - second_attempt.answered_at >= 5.9
        (letter,) = dead_letters(admin)
        assert letter["attempts"] == 4


class TestGivingUp:
    """After the last attempt, or when the endpoint says it is gone, the action is dead-lettered."""

    def test_after_the_last_attempt_the_action_is_dead_lettered_and_a_replay_delivers_it(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        failing = True
        receiver.answer = lambda _id, _nth: Reply(500 if failing else 200)
        secret = create_endpoint(admin, receiver.url)
        dispatchers(webhook_retry_schedule="0.2s,0.2s")
        queue(redis_client, action(1))
        wait_for(lambda: dead_letters(admin), 10, "the dead letter")

        (letter,) = dead_letters(admin)
        assert letter["id"] == "act-1" and letter["attempts"] == 3 and letter["last_status"] == 500
        assert letter["reason"] == "gave up after 3 attempts; last: answered 500"
        assert len(receiver.attempts()) == 3
        wait_quiet(redis_client)  # acked only now that it is dead
        assert_counts(admin, dead=1, delivered=0, retrying=0, failed_attempts=3)

        failing = False
        assert admin.post("/v1/admin/webhooks/dead-letters/act-1/replay", headers=ADMIN).json() == {"replayed": 1}
        wait_delivered(receiver, {"act-1"})
        assert len(receiver.attempts()) == 4  # a fresh schedule, the same id
        Webhook(secret).verify(receiver.attempts()[-1].body, receiver.attempts()[-1].headers)
        assert dead_letters(admin) == []
        assert admin.post("/v1/admin/webhooks/dead-letters/act-1/replay", headers=ADMIN).status_code == 404

    def test_410_disables_the_endpoint_and_its_later_actions_are_dead_lettered_unsent(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        gone = True
        receiver.answer = lambda _id, _nth: Reply(410 if gone else 200)
        create_endpoint(admin, receiver.url)
        dispatchers()
        queue(redis_client, action(1))
        wait_for(lambda: admin.get("/v1/admin/webhooks/endpoints/shop", headers=ADMIN).json()["disabled"], 10,
                 "the endpoint to be disabled")
        queue(redis_client, action(2, contact="bob"))
        wait_for(lambda: len(dead_letters(admin)) == 2, 10, "both dead letters")

        assert [a.webhook_id for a in receiver.attempts()] == ["act-1"]  # act-2 was never sent
        endpoint = admin.get("/v1/admin/webhooks/endpoints/shop", headers=ADMIN).json()
        assert "410" in endpoint["disabled_reason"]
        assert {str(letter["reason"]).split(":")[0] for letter in dead_letters(admin)} == {
            "endpoint 'shop' disabled", "endpoint 'shop' is disabled"}

        gone = False
        assert admin.post("/v1/admin/webhooks/endpoints/shop/enable", headers=ADMIN).json()["disabled"] is False
        for letter_id in ("act-1", "act-2"):
            admin.post(f"/v1/admin/webhooks/dead-letters/{letter_id}/replay", headers=ADMIN)
        wait_delivered(receiver, {"act-1", "act-2"})

    def test_an_endpoint_failing_longer_than_the_setting_is_disabled(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        receiver.answer = lambda _id, _nth: Reply(500)
        create_endpoint(admin, receiver.url)
        dispatchers(webhook_retry_schedule="0.5s,0.5s,0.5s,0.5s,0.5s,0.5s", webhook_disable_after_s="1")
        queue(redis_client, action(1))
        wait_for(lambda: dead_letters(admin), 15, "the dead letter")

        endpoint = admin.get("/v1/admin/webhooks/endpoints/shop", headers=ADMIN).json()
        assert endpoint["disabled"] and endpoint["disabled_reason"].startswith("failing since")
        assert 3 <= len(receiver.attempts()) < 7  # disabled before the schedule ran out


class TestOrder:
    """Per contact, actions arrive in order; other contacts do not wait."""

    def test_a_contacts_later_action_waits_while_an_earlier_one_retries(
            self, redis_client: redis.Redis, admin: TestClient, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        receiver.answer = lambda webhook_id, nth: Reply(500 if webhook_id == "act-a1" and nth < 3 else 200)
        create_endpoint(admin, receiver.url)
        dispatchers(webhook_retry_schedule="0.7s,0.7s,0.7s", outbox_shards="1")
        queue(redis_client, action("a1", contact="ada"), action("a2", contact="ada"), action("b1", contact="bob"),
              action("a3", contact="ada"), shards=1)
        wait_delivered(receiver, {"act-a1", "act-a2", "act-a3", "act-b1"})

        order = [a.webhook_id for a in receiver.attempts()]
        ada = [i for i in order if i.startswith("act-a")]
        assert ada == ["act-a1", "act-a1", "act-a1", "act-a2", "act-a3"]
        assert order.index("act-b1") < order.index("act-a2")  # bob did not wait for ada's retries


class TestAddresses:
    """Webhooks never reach private, loopback or link-local addresses unless a setting allows them."""

    def test_the_dispatcher_resolves_at_send_time_and_refuses_a_loopback_address(
            self, redis_client: redis.Redis, receiver: WebhookReceiver, dispatchers: DispatcherFactory,
            admin: TestClient) -> None:
        """An endpoint that passed the check when configured (say DNS changed since) is checked again."""
        endpoint = WebhookEndpoint(id="shop", url=receiver.url.replace("127.0.0.1", "localhost"),
                                   secrets=[EndpointSecret(secret="whsec_" + "A" * 43 + "=", created_at=0)],
                                   created_at=0, updated_at=0)
        redis_client.hset(keys.webhook_endpoints(), "shop", encode(endpoint))
        dispatchers(webhook_allowed_networks="")
        queue(redis_client, action(1))
        wait_for(lambda: dead_letters(admin), 10, "the dead letter")

        assert receiver.attempts() == []
        (letter,) = dead_letters(admin)
        assert "loopback address" in str(letter["reason"]) and "refused" in str(letter["reason"])


class TestSecretRotation:
    """While a secret rotates, both sign; each signature verifies with its own secret."""

    def test_old_and_new_secret_both_sign_during_the_grace_period_then_only_the_new(
            self, redis_client: redis.Redis, redis_server: RedisServer, receiver: WebhookReceiver,
            dispatchers: DispatcherFactory) -> None:
        with admin_client(redis_server.url, webhook_secret_grace_s=3) as admin:
            old = create_endpoint(admin, receiver.url)
            rotated = admin.post("/v1/admin/webhooks/endpoints/shop/rotate-secret", headers=ADMIN).json()
            new = rotated["secret"]
            assert new != old and rotated["endpoint"]["secrets"] == 2
            dispatchers()
            queue(redis_client, action(1))
            wait_delivered(receiver, {"act-1"})

            attempt = receiver.attempts()[0]
            signatures = attempt.headers["webhook-signature"].split(" ")
            assert len(signatures) == 2
            for secret, signature in zip((new, old), signatures, strict=True):
                Webhook(secret).verify(attempt.body, {**attempt.headers, "webhook-signature": signature})
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(attempt.body, {**attempt.headers, "webhook-signature": signatures[0]})

            wait_for(lambda: admin.get("/v1/admin/webhooks/endpoints/shop", headers=ADMIN).json()["secrets"] == 1,
                     10, "the grace period to end")
            queue(redis_client, action(2))
            wait_delivered(receiver, {"act-2"})
            later = receiver.attempts()[-1]
            assert len(later.headers["webhook-signature"].split(" ")) == 1
            Webhook(new).verify(later.body, later.headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(later.body, later.headers)

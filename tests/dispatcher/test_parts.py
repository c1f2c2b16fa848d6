"""The dispatcher's pieces on their own: schedule, Retry-After, signatures, secrets, the SSRF policy, rotation."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook

from api.dispatcher.addresses import AddressPolicy, check_configured_url, kind_of, split_url
from api.dispatcher.endpoints import rotated
from api.dispatcher.errors import InvalidScheduleError, InvalidSecretError, RefusedAddressError
from api.dispatcher.records import EndpointSecret, WebhookEndpoint
from api.dispatcher.schedule import RetrySchedule, parse_retry_after
from api.dispatcher.signing import new_secret, secret_key, signature_header
from api.dispatcher.webhook import webhook_body
from state.settings import Settings
from tests.dispatcher.conftest import action

DAY = 86_400.0


class TestSchedule:
    """Retries follow a schedule spanning days, with bounded jitter."""

    def test_the_default_schedule_spans_more_than_three_days_with_jitter_at_its_lowest(self) -> None:
        settings = Settings()
        schedule = RetrySchedule.parse(settings.webhook_retry_schedule, settings.webhook_retry_jitter)
        assert schedule.delays[:3] == (5.0, 300.0, 1800.0) and schedule.max_attempts == 11
        lowest = sum(schedule.delay_after(n, lambda low, _high: low) for n in range(1, schedule.max_attempts))
        assert lowest > 3 * DAY

    def test_each_delay_varies_within_the_jitter(self) -> None:
        schedule = RetrySchedule.parse("10s,1m", 0.2)
        assert schedule.delay_after(1, lambda low, _high: low) == pytest.approx(8.0)
        assert schedule.delay_after(2, lambda _low, high: high) == pytest.approx(72.0)

    @pytest.mark.parametrize("text", ["5x", "", "5s,,5m", "-1s", "1 h 2"])
    def test_an_unreadable_schedule_is_refused_naming_the_step(self, text: str) -> None:
        with pytest.raises(InvalidScheduleError, match="retry schedule step"):
            RetrySchedule.parse(text, 0.1)

    def test_retry_after_in_seconds_or_as_an_http_date(self) -> None:
        now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        assert parse_retry_after("120", now.timestamp()) == 120.0
        assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True),
                                 now.timestamp()) == pytest.approx(30.0)
        assert parse_retry_after("soon", now.timestamp()) is None
        assert parse_retry_after(None, now.timestamp()) is None


class TestSignatures:
    """Signatures are the spec's: the reference verifier accepts them, one per secret in force."""

    def test_a_signature_verifies_with_the_reference_library(self) -> None:
        secret = new_secret()
        body = webhook_body(action(1))
        timestamp = int(datetime.now(UTC).timestamp())
        headers = {"webhook-id": "act-1", "webhook-timestamp": str(timestamp),
                   "webhook-signature": signature_header([secret], "act-1", timestamp, body)}
        assert Webhook(secret).verify(body, headers)["data"]["id"] == "act-1"

    def test_the_body_is_the_same_bytes_at_every_attempt(self) -> None:
        assert webhook_body(action(1)) == webhook_body(action(1))

    def test_two_secrets_give_two_signatures_each_verifying_alone(self) -> None:
        old, new = new_secret(), new_secret()
        body, timestamp = b'{"a":1}', int(datetime.now(UTC).timestamp())
        header = signature_header([new, old], "m1", timestamp, body)
        for secret, signature in zip((new, old), header.split(" "), strict=True):
            Webhook(secret).verify(body, {"webhook-id": "m1", "webhook-timestamp": str(timestamp),
                                          "webhook-signature": signature})

    @pytest.mark.parametrize("secret", ["abc", "whsec_!!!", "whsec_" + "QUFB" * 4, "whsec_" + "QUFB" * 30])
    def test_a_secret_must_be_whsec_and_24_to_64_bytes(self, secret: str) -> None:
        with pytest.raises(InvalidSecretError):
            secret_key(secret)

    def test_generated_secrets_are_32_random_bytes(self) -> None:
        assert len(secret_key(new_secret())) == 32 and new_secret() != new_secret()


class TestAddresses:
    """Only globally reachable addresses pass, unless allowed; embedded IPv4 is judged as IPv4."""

    @pytest.mark.parametrize(("address", "kind"), [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("100.64.0.1", "non-global"),
        ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "private"), ("2002:7f00:1::", "loopback"), ("fc00::1", "private"),
        ("93.184.215.14", None), ("2606:4700::1111", None),
    ])
    def test_what_kind_of_address_it_is(self, address: str, kind: str | None) -> None:
        assert kind_of(ipaddress.ip_address(address)) == kind

    def test_an_allowed_network_lets_its_addresses_through(self) -> None:
        policy = AddressPolicy.from_setting("127.0.0.1/32, 10.0.0.0/8")
        assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
        assert policy.refusal(ipaddress.ip_address("10.9.9.9")) is None
        assert policy.refusal(ipaddress.ip_address("127.0.0.2")) == "127.0.0.2 is a loopback address"

    @pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/hook", "http:///x", "http://a b/",
                                     "http://example.com:99999/", "https://" + "a" * 3000 + ".com/"])
    def test_a_url_that_is_not_absolute_http_is_refused(self, url: str) -> None:
        with pytest.raises(RefusedAddressError):
            split_url(url)

    async def test_configuring_refuses_forbidden_literals_and_accepts_a_name_that_does_not_resolve_yet(
            self) -> None:
        policy = AddressPolicy()
        for url in ("http://127.0.0.1:8000/x", "http://[::1]/x", "http://169.254.169.254/", "http://localhost/"):
            with pytest.raises(RefusedAddressError, match="refused"):
                await check_configured_url(policy, url)
        await check_configured_url(policy, "https://93.184.215.14/hooks")
        await check_configured_url(policy, "https://hooks.shop.invalid/attimo")  # checked again at send time


class TestRotation:
    """A rotation puts the new secret first and keeps the others signing until the grace period ends."""

    def test_rotating_twice_keeps_each_old_secret_only_until_its_own_end(self) -> None:
        endpoint = WebhookEndpoint(id="e", url="https://x.example/", created_at=0, updated_at=0,
                                   secrets=[EndpointSecret(secret="s1", created_at=0)])
        once = rotated(endpoint, "s2", now=100, grace_s=50)
        assert once.signing_secrets(120) == ["s2", "s1"] and once.signing_secrets(151) == ["s2"]
        twice = rotated(once, "s3", now=120, grace_s=50)
        assert twice.signing_secrets(121) == ["s3", "s2", "s1"]
        assert twice.signing_secrets(160) == ["s3", "s2"] and twice.signing_secrets(171) == ["s3"]
        assert rotated(twice, "s4", now=200, grace_s=0).signing_secrets(200) == ["s4"]

"""The rate limiter's arithmetic (GCRA) and the client IP behind proxies, on a fixed clock."""

from __future__ import annotations

import pytest

from api.errors import RateLimitedError
from api.rate_limits import Limiter, Rate, RateLimits, TrustedProxies
from state.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestLimiter:
    """A bucket of `burst` tokens refilled at `per_s`; refusals take nothing and say when to retry."""

    def test_the_burst_passes_then_one_more_waits_one_interval(self) -> None:
        clock = Clock()
        limiter = Limiter("write key", Rate(10, 100), clock=clock)
        assert limiter.wait_s("k", 100) == 0.0
        assert limiter.wait_s("k", 1) == pytest.approx(0.1)
        clock.now += 0.1
        assert limiter.wait_s("k", 1) == 0.0

    def test_a_refused_request_takes_nothing(self) -> None:
        clock = Clock()
        limiter = Limiter("write key", Rate(1, 10), clock=clock)
        assert limiter.wait_s("k", 8) == 0.0
        assert limiter.wait_s("k", 5) == pytest.approx(3.0)
        assert limiter.wait_s("k", 2) == 0.0

    def test_a_batch_larger_than_the_burst_passes_on_a_full_bucket(self) -> None:
        limiter = Limiter("write key", Rate(1, 10), clock=Clock())
        assert limiter.wait_s("k", 100) == 0.0
        assert limiter.wait_s("k", 1) > 0

    def test_clients_are_counted_apart(self) -> None:
        limiter = Limiter("client IP", Rate(1, 5), clock=Clock())
        assert limiter.wait_s("a", 5) == 0.0
        assert limiter.wait_s("a", 1) > 0
        assert limiter.wait_s("b", 5) == 0.0

    def test_rate_zero_is_off(self) -> None:
        limiter = Limiter("client IP", Rate(0, 0), clock=Clock())
        assert all(limiter.wait_s("a", 10_000) == 0.0 for _ in range(100))
        assert len(limiter) == 0

    def test_the_error_names_the_limit_and_rounds_the_wait_up(self) -> None:
        limiter = Limiter("write key", Rate(2000, 10_000), clock=Clock())
        limiter.wait_s("k", 10_000)
        with pytest.raises(RateLimitedError) as refused:
            limiter.check("k", 100)
        assert refused.value.retry_after_s == 1 and refused.value.limit == "write key"
        assert str(refused.value) == ("rate limit exceeded: write key over 2000 events/s (burst 10000); "
                                      "retry after 1 s")

    def test_the_table_is_bounded_and_forgets_full_buckets_first(self) -> None:
        clock = Clock()
        limiter = Limiter("client IP", Rate(1, 10), max_clients=3, clock=clock)
        limiter.wait_s("old", 1)
        clock.now += 5  # "old" is full again
        limiter.wait_s("busy1", 10)
        limiter.wait_s("busy2", 10)
        limiter.wait_s("new", 1)
        assert len(limiter) == 3
        assert limiter.wait_s("busy1", 1) > 0  # still remembered, still limited


    def test_a_flood_of_new_clients_keeps_the_table_bounded_and_the_newest_limited(self) -> None:
        limiter = Limiter("client IP", Rate(1, 10), max_clients=100, clock=Clock())
        for n in range(1000):
            assert limiter.wait_s(f"10.0.{n // 256}.{n % 256}", 10) == 0.0
            assert len(limiter) <= 100
        assert limiter.wait_s("10.0.3.231", 1) > 0  # the last one seen is still remembered


class TestIngestLimits:
    """Ingest charges both the key and the IP, or neither."""

    def test_a_refusal_by_the_key_leaves_the_ip_untouched(self) -> None:
        settings = Settings(rate_limit_key_per_s=1, rate_limit_key_burst=10, rate_limit_ip_per_s=1,
                            rate_limit_ip_burst=15)
        limits = RateLimits.from_settings(settings, clock=Clock())
        limits.check_ingest("k1", "1.2.3.4", 10)
        with pytest.raises(RateLimitedError, match="write key"):
            limits.check_ingest("k1", "1.2.3.4", 5)
        limits.check_ingest("k2", "1.2.3.4", 5)  # the IP still had 5
        with pytest.raises(RateLimitedError, match="client IP"):
            limits.check_ingest("k3", "1.2.3.4", 1)


    def test_room_is_checked_without_taking_anything(self) -> None:
        settings = Settings(rate_limit_key_per_s=1, rate_limit_key_burst=10, rate_limit_ip_per_s=1,
                            rate_limit_ip_burst=10)
        limits = RateLimits.from_settings(settings, clock=Clock())
        for _ in range(20):
            limits.check_room("k1", "1.2.3.4")
        limits.check_ingest("k1", "1.2.3.4", 10)
        with pytest.raises(RateLimitedError, match="client IP"):
            limits.check_room(None, "1.2.3.4")
        with pytest.raises(RateLimitedError, match="write key"):
            limits.check_room("k1", "5.6.7.8")


class TestClientIp:
    """X-Forwarded-For counts only when the peer is a trusted proxy."""

    def test_without_trusted_proxies_the_peer_is_the_client(self) -> None:
        assert TrustedProxies.parse("").client_ip("10.0.0.1", "203.0.113.5") == "10.0.0.1"

    def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(self) -> None:
        proxies = TrustedProxies.parse("10.0.0.0/8, 192.168.1.1")
        assert proxies.client_ip("10.0.0.1", "1.1.1.1, 203.0.113.5, 192.168.1.1") == "203.0.113.5"
        assert proxies.client_ip("172.16.0.9", "203.0.113.5") == "172.16.0.9"  # not a trusted peer
        assert proxies.client_ip("10.0.0.1", None) == "10.0.0.1"

    def test_a_bad_entry_is_named(self) -> None:
        with pytest.raises(ValueError, match="'not-an-ip'"):
            TrustedProxies.parse("10.0.0.1,not-an-ip")

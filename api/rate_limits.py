"""Rate limits per write key and per client IP, on ingest and on public reads.

A client holding a site's write key (it sits in every page) could flood
ingest or the decisions route; these limits cap what one key and one IP may
send, so one abuser slows down alone instead of filling the streams.

Each limit is GCRA (the generic cell rate algorithm, a token bucket kept as
one number): a client is remembered by its "theoretical arrival time", the
moment its bucket would be full again. Taking `n` tokens moves it forward by
`n / rate`; a request is refused when that would put it more than
`burst / rate` ahead of now, and the refusal says how long until it would
fit (`Retry-After`). One float per client, a dict look-up and a few
additions per check.

Counted per frame or request, never per event: a batch of 100 events costs
one check that takes 100 tokens.

Kept in process memory, not Redis: a Redis round trip per frame would cost
more than the rest of the frame's handling on the gateway, and an in-memory
check costs under a microsecond. So with several API or gateway processes
behind a load balancer each enforces the limit on its own share: N processes
let a client through at up to N times the rate (set the rates per process).
The table is bounded (`max_clients`): clients whose bucket is full again are
forgotten first, then the first seen; a forgotten client starts with a full
bucket, so eviction errs towards letting traffic through.

A rate of 0 turns a limit off.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from api.errors import RateLimitedError

# Names of the limits, as the error messages and the docs give them.
WRITE_KEY: Final = "write key"
CLIENT_IP: Final = "client IP"
READS_IP: Final = "decisions reads per client IP"

MAX_RETRY_AFTER_S: Final = 3600


@dataclass(frozen=True, slots=True)
class Rate:
    """A sustained rate (per second) and the burst allowed above it; rate 0 means unlimited."""

    per_s: float
    burst: float

    @property
    def enabled(self) -> bool:
        """Whether this limit applies at all."""
        return self.per_s > 0


class Limiter:
    """One GCRA bucket per client (a write key, an IP), for one `Rate`."""

    def __init__(self, name: str, rate: Rate, unit: str = "events", max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.rate = rate
        self.unit = unit
        self.max_clients = max_clients
        self._clock = clock
        self._interval = 1.0 / rate.per_s if rate.enabled else 0.0
        # Past this a client's bucket is empty; never below one request's worth.
        self._tolerance = max(rate.burst, 1.0) * self._interval
        self._full_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._full_at)

    def wait_s(self, client: str, cost: float = 1.0) -> float:
        """Take `cost` tokens from `client`'s bucket: 0.0 when allowed, else seconds until it would be.

        A refused request takes nothing. A cost above the burst is charged
        as the burst, so a single large batch is never refused forever.
        """
        wait, after = self.peek(client, cost)
        if not wait and after is not None:
            self.take(client, after)
        return wait

    def peek(self, client: str, cost: float = 1.0) -> tuple[float, float | None]:
        """(seconds to wait, 0.0 when allowed; the bucket's state after taking) without taking."""
        if not self._interval:
            return 0.0, None
        now = self._clock()
        full_at = self._full_at.get(client, now)
        if full_at < now:
            full_at = now
        after = full_at + min(cost * self._interval, self._tolerance)
        return max(0.0, after - now - self._tolerance), after

    def take(self, client: str, after: float) -> None:
        """Record the bucket state `peek` computed (the tokens are now taken)."""
        if client not in self._full_at and len(self._full_at) >= self.max_clients:
            self._evict(self._clock())
        self._full_at[client] = after

    def check(self, client: str, cost: float = 1.0) -> None:
        """Take `cost` tokens or raise `RateLimitedError` naming this limit and when to retry."""
        wait = self.wait_s(client, cost)
        if wait:
            raise self.refusal(wait)

    def refusal(self, wait_s: float) -> RateLimitedError:
        """The error for a refusal that would fit after `wait_s` seconds."""
        retry_after = min(MAX_RETRY_AFTER_S, max(1, math.ceil(wait_s)))
        return RateLimitedError(
            self.name,
            f"rate limit exceeded: {self.name} over {self.rate.per_s:g} {self.unit}/s "
            f"(burst {self.rate.burst:g}); retry after {retry_after} s",
            retry_after)

    def _evict(self, now: float) -> None:
        """Make room for a tenth of the table at once: clients whose bucket is full again, then the first seen.

        Freeing a tenth at a time keeps the scan's cost per new client
        constant on average, even while a flood of new addresses keeps the
        table full.
        """
        table = self._full_at
        for client in [client for client, at in table.items() if at <= now]:
            del table[client]
        excess = len(table) - (self.max_clients - max(1, self.max_clients // 10))
        if excess > 0:
            for client in list(table)[:excess]:  # first seen first: a dict keeps insertion order
                del table[client]


class TrustedProxies:
    """Which peers may name the client in `X-Forwarded-For` (the `trusted_proxies` setting).

    With none configured the client is the socket's peer: a header anyone
    can send must not choose whose limit a request counts against. Behind a
    trusted proxy the client is the right-most `X-Forwarded-For` hop that is
    not itself a trusted proxy (the hops to its left were written by the
    client and prove nothing).
    """

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()]
        self._trusted: dict[str, bool] = {}

    @classmethod
    def parse(cls, setting: str) -> TrustedProxies:
        """From a comma-separated list of addresses or CIDR networks; a bad entry raises naming it."""
        entries = [entry.strip() for entry in setting.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or network") from exc
        return cls(entries)

    def trusts(self, address: str) -> bool:
        """Whether `address` is one of the trusted proxies (remembered per address)."""
        known = self._trusted.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip in network for network in self.networks)
            if len(self._trusted) < 10_000:
                self._trusted[address] = known
        return known

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client a request counts as: the peer, or the right-most untrusted forwarded hop."""
        peer = peer or "unknown"
        if not self.networks or not forwarded_for or not self.trusts(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if hop and not self.trusts(hop):
                return hop
        return peer


@dataclass
class RateLimits:
    """The limits of one process: ingest per write key and per IP, decisions reads per IP."""

    key: Limiter
    ip: Limiter
    reads: Limiter
    proxies: TrustedProxies

    @classmethod
    def from_settings(cls, settings: Any, clock: Callable[[], float] = time.monotonic) -> RateLimits:
        """Built from a `Settings` object (the `rate_limit_*` and `trusted_proxies` settings)."""
        most = settings.rate_limit_max_clients
        return cls(
            Limiter(WRITE_KEY, Rate(settings.rate_limit_key_per_s, settings.rate_limit_key_burst),
                    max_clients=most, clock=clock),
            Limiter(CLIENT_IP, Rate(settings.rate_limit_ip_per_s, settings.rate_limit_ip_burst),
                    max_clients=most, clock=clock),
            Limiter(READS_IP, Rate(settings.rate_limit_reads_per_s, settings.rate_limit_reads_burst),
                    unit="requests", max_clients=most, clock=clock),
            TrustedProxies.parse(settings.trusted_proxies),
        )

    def check_ingest(self, key: str, ip: str, events: int) -> None:
        """Charge `events` to both the write key and the IP; raise for the first limit over.

        Both are checked before either is charged, so a refused request costs
        no bucket anything.
        """
        ip_wait, ip_after = self.ip.peek(ip, events)
        if ip_wait:
            raise self.ip.refusal(ip_wait)
        key_wait, key_after = self.key.peek(key, events)
        if key_wait:
            raise self.key.refusal(key_wait)
        if ip_after is not None:
            self.ip.take(ip, ip_after)
        if key_after is not None:
            self.key.take(key, key_after)


    def check_room(self, key: str | None, ip: str) -> None:
        """Raise when the IP (or the key, when already known) has no room for even one event.

        Asked before a request's body is read: a client already over its
        limit is refused for the cost of a look-up, not of reading and
        validating its batch. Takes nothing.
        """
        for limiter, client in ((self.ip, ip), (self.key, key)):
            if client is not None:
                wait, _ = limiter.peek(client, 1)
                if wait:
                    raise limiter.refusal(wait)


def limits_of(app_state: Any) -> RateLimits:
    """The process's `RateLimits`, built from its settings on first use and kept on `app.state`."""
    limits: RateLimits | None = getattr(app_state, "rate_limits", None)
    if limits is None:
        limits = RateLimits.from_settings(app_state.settings)
        app_state.rate_limits = limits
    return limits

"""Soak: the whole stack at half its measured capacity for minutes, watched for growth.

`python -m benchmarks --soak [--soak-minutes 10]`; never part of `--short`
or `--full`. The stack is the one `stack.py` starts (redis, gateway,
dataflow with recovery, API). Capacity is measured first (closed loop, the
same traffic, until the dataflow has caught up) unless given; then the
tracker protocol is driven open loop at half of it. Shoppers arrive in
waves: for half of each wave most sessions are new visitors, for the other
half most are returning ones, so that growth caused by new contacts and
growth caused by traffic (events, time) can be told apart by a fit.

Sessions are cut from a few thousand seeded shopper sessions (templates,
`shoppers.ShopperModel`), with the visitor id, a session token and the
event times filled in per visit, so the generator spends microseconds per
event and keeps one fixed-size table of counters per visitor: its own RSS
is a baseline, not a second thing that grows.

Every few seconds a sample records each process's RSS and CPU, Redis
`used_memory` and the event streams' share of it, the recovery store's
size on disk, contacts and events so far, ingest lag, and the latency of
probe events (a fresh visitor's page view → its profile readable, and its
decision pushed; `probes.py`). After the warm-up, `summarise` judges each
series; at the end every contact's counters must equal what was acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from array import array
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import orjson
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from benchmarks.correctness import wait_exact
from benchmarks.http_client import HttpConnection, basic_auth
from benchmarks.probes import ProbeResult, Probes
from benchmarks.progress import note
from benchmarks.shoppers import ShopperModel, Tally
from benchmarks.stack import SHARDS, Stack, caught_up, cpu_seconds, last_entry_ids, rss_bytes, wait_until
from benchmarks.stats import percentiles
from benchmarks.ws_protocol import frame_bytes
from state import keys
from state.frames import RejectedEvent
from state.streams import ingest_lag_seconds

# A process is flat when its largest RSS after warm-up is within this of its smallest.
FLAT: Final = 0.10
# A series grows "with contacts" when a straight line in contacts explains it
# (R² at least this) and, fitted jointly with events, events account for at most
# this share of the growth.
MIN_R2: Final = 0.90
MAX_EVENT_SHARE: Final = 0.25
# Processes whose job is to hold per-contact state: for them, RSS growing with
# contacts is what they are for; the others must stay flat.
STATEFUL: Final = ("redis", "dataflow")
# The stack keeps up when, after warm-up, ingest lag stays within this and the
# acked rate falls short of the planned one by at most this share.
MAX_LAG_S: Final = 5.0
KEPT_UP_SHORTFALL: Final = 0.05
# How long a probe window waits for its last probes to become visible.
SETTLE_S: Final = 30.0
PLACEHOLDER_ID, PLACEHOLDER_SESSION, PLACEHOLDER_TIME = b"@A@", b"@S@", b"@T@"
# Counter columns as `Tally` has them: events, page views, product views, cart adds, orders.
PAGE, VIEW, ADD, ORDER = 1, 2, 3, 4


@dataclass(frozen=True)
class SoakOptions:
    """How long, how hard and how often."""

    minutes: float = 10.0
    capacity: float | None = None  # events/s; measured when None
    capacity_seconds: float = 20.0
    load_share: float = 0.5
    interval_s: float = 5.0
    warmup_share: float = 0.2
    connections: int = 50
    frame_size: int = 5
    probe_rate: float = 10.0
    new_share_high: float = 0.8
    new_share_low: float = 0.2
    templates: int = 3_000
    seed: int = 42

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def wave_s(self) -> float:
        """One wave of new visitors then returning ones: five per run, 20 s to 2 min each."""
        return min(120.0, max(20.0, self.seconds / 5))


# -- traffic ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    """One visit, encoded, with the visitor id, session token and times left as placeholders."""

    events: tuple[bytes, ...]  # browser events first, then server-side ones
    browser: int
    offsets_ms: tuple[int, ...]
    kinds: tuple[int, ...]
    revenue: tuple[float, ...]
    user_only: tuple[bool, ...]  # keyed by the user id alone (e-mail opens)
    links: tuple[bool, ...]  # carries both ids: ties the visitor to its user
    signs_up: bool
    span_ms: int


def _kind(event: dict[str, Any]) -> int:
    if event["type"] == "page":
        return PAGE
    return {"Product Viewed": VIEW, "Product Added": ADD, "Order Completed": ORDER}.get(event.get("event", ""), 0)


def _stamp(at: str) -> int:
    return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)


def build_templates(seed: int, count: int, known: bool) -> list[_Template]:
    """`count` sessions of new (or, with `known`, signed-up) shoppers, as templates."""
    model = ShopperModel(seed + int(known), prefix="tpl")
    out = []
    for _ in range(count):
        visitor = model.new_visitor()
        if known:
            visitor.user_id = f"u-{visitor.anonymous_id}"
        session = model.session(visitor, model.days - 1)
        raw = [*session.browser, *session.server]
        first = _stamp(raw[0]["timestamp"])
        encoded = []
        for k, event in enumerate(raw):
            event = {**event, "messageId": f"@A@.@S@.{k}", "timestamp": "@T@"}
            if "order_id" in event.get("properties", {}):
                event["properties"] = {**event["properties"], "order_id": "o-@A@.@S@"}
            encoded.append(orjson.dumps(event).replace(visitor.anonymous_id.encode(), PLACEHOLDER_ID))
        offsets = tuple(_stamp(e["timestamp"]) - first for e in raw)
        out.append(
            _Template(
                tuple(encoded),
                len(session.browser),
                offsets,
                tuple(_kind(e) for e in raw),
                tuple(float(e.get("properties", {}).get("revenue", 0.0)) for e in raw),
                tuple("anonymousId" not in e for e in raw),
                tuple("anonymousId" in e and "userId" in e for e in raw),
                not known and visitor.user_id is not None,
                max(offsets[: len(session.browser)]),
            )
        )
    return out


def _iso(ms: int) -> bytes:
    at = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return at.replace("+00:00", "Z").encode()


class Traffic:
    """Endless shoppers, new and returning, and what was acked for each (one row per visitor)."""

    def __init__(
        self, seed: int, prefix: str, visitors: int, anonymous: list[_Template], known: list[_Template]
    ) -> None:
        self.prefix = prefix
        self.cap = visitors
        self.templates = anonymous + known
        self._anonymous = len(anonymous)
        self._rng = np.random.default_rng(seed)
        self.created = 0
        self.sessions = 0
        self.capped = False
        self.signed_up = bytearray(visitors)
        self.linked = bytearray(visitors)
        # Allocated (and written) up front, so their pages are resident from the start.
        self.by_visitor = array("q", [0]) * (visitors * 5)
        self.by_user = array("q", [0]) * (visitors * 5)
        self.revenue = array("d", [0.0]) * (visitors * 2)
        self.contacts = 0
        self.events = 0

    def visitor_id(self, n: int) -> str:
        return f"{self.prefix}-{n:07d}-{(n * 2654435761) % 2**32:08x}"

    def next_session(self, new_share: float, frame_size: int) -> tuple[int, int, list[tuple[bytes, int, int]]]:
        """A visit: visitor, template, and its events as (batch, first, end) chunks, browser first."""
        rng = self._rng
        returning = self.created > 0 and (self.created >= self.cap or rng.random() >= new_share)
        if returning:
            n = int(rng.integers(self.created))
            self.capped = self.capped or self.created >= self.cap
        else:
            n = self.created
            self.created += 1
        known = bool(self.signed_up[n])
        t = int(rng.integers(self._anonymous, len(self.templates))) if known else int(rng.integers(self._anonymous))
        template = self.templates[t]
        if template.signs_up:
            self.signed_up[n] = 1
        self.sessions += 1
        who, token = self.visitor_id(n).encode(), f"{self.sessions:x}".encode()
        start = int(time.time() * 1000) - template.span_ms
        events = [
            raw.replace(PLACEHOLDER_ID, who)
            .replace(PLACEHOLDER_SESSION, token)
            .replace(PLACEHOLDER_TIME, _iso(start + min(offset, template.span_ms)))
            for raw, offset in zip(template.events, template.offsets_ms, strict=True)
        ]
        chunks = [
            (
                b"[" + b",".join(events[i : min(i + frame_size, template.browser)]) + b"]",
                i,
                min(i + frame_size, template.browser),
            )
            for i in range(0, template.browser, frame_size)
        ]
        chunks += [(events[k], k, k + 1) for k in range(template.browser, len(events))]
        return n, t, chunks

    def acked(self, n: int, t: int, first: int, end: int, rejected: frozenset[int] = frozenset()) -> int:
        """Count events `first`..`end` of visit (`n`, `t`) as stored; returns how many counted."""
        template = self.templates[t]
        if self.by_visitor[n * 5] == 0 and self.by_user[n * 5] == 0:
            self.contacts += 1
        counted = 0
        for k in range(first, end):
            if k - first in rejected:
                continue
            table, column = (self.by_user, 1) if template.user_only[k] else (self.by_visitor, 0)
            table[n * 5] += 1
            kind = template.kinds[k]
            if kind:
                table[n * 5 + kind] += 1
            if kind == ORDER:
                self.revenue[n * 2 + column] = round(self.revenue[n * 2 + column] + template.revenue[k], 2)
            if template.links[k]:
                self.linked[n] = 1
            counted += 1
        self.events += counted
        return counted

    def tally(self) -> Tally:
        """What every contact's counters must be, as the suite's correctness check reads them."""
        tally = Tally()
        for n in range(self.created):
            who = self.visitor_id(n)
            for table, column, key in ((self.by_visitor, 0, who), (self.by_user, 1, f"u-{who}")):
                row = table[n * 5 : n * 5 + 5]
                if row[0]:
                    tally.rows[key] = [*row, self.revenue[n * 2 + column]]
                    tally.events += row[0]
            if self.linked[n]:
                tally.links[who] = f"u-{who}"
        return tally


# -- load -------------------------------------------------------------------------------


class _Reply(msgspec.Struct):
    """An `Ack` or a `FrameError` (state.frames); decision pushes decode with `ack` None."""

    ack: int | None = None
    accepted: int = 0
    rejected: list[RejectedEvent] = msgspec.field(default_factory=list)
    error: str | None = None


_reply: Final = msgspec.json.Decoder(_Reply)


@dataclass(slots=True)
class _Frame:
    batch: bytes
    visitor: int
    template: int
    first: int
    end: int
    order: int
    sent_at: float = 0.0


@dataclass
class LoadStats:
    """What the generator did; the windowed lists are emptied at every sample."""

    events_sent: int = 0
    events_acked: int = 0
    events_rejected: int = 0
    frame_errors: int = 0
    http_errors: int = 0
    reconnects: int = 0
    unacked_at_end: int = 0
    queued_max: int = 0
    errors: list[str] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(text)


class _Socket:
    """One tracker connection (a proxy for many browsers): resends what was not acked after a drop."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.queue: deque[_Frame] = deque()
        self.inflight: dict[int, _Frame] = {}
        self.wake = asyncio.Event()

    async def run(self) -> None:
        load, attempts = self.load, 0
        while True:
            try:
                async with connect(
                    load.url, compression=None, max_size=None, open_timeout=30, ping_interval=None
                ) as ws:
                    attempts = 0
                    if await self._session(ws):
                        return
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                load.stats.error(f"{type(exc).__name__}: {exc}")
            load.stats.reconnects += 1
            attempts += 1
            if attempts > 20:
                return
            await asyncio.sleep(0.2 * attempts)

    async def _session(self, ws: ClientConnection) -> bool:
        """Send until closing and all acked (True) or the socket is lost (False)."""
        load = self.load
        self.queue.extendleft(sorted(self.inflight.values(), key=lambda f: f.order, reverse=True))
        self.inflight.clear()
        receiver = asyncio.create_task(self._receive(ws))
        seq = 0
        try:
            while True:
                self.wake.clear()
                if receiver.done():
                    return False
                if self.queue and (load.window is None or len(self.inflight) < load.window):
                    frame = self.queue.popleft()
                    seq += 1
                    frame.sent_at = time.monotonic()
                    self.inflight[seq] = frame
                    await ws.send(frame_bytes(seq, frame.batch).decode())
                    continue
                if load.closing and not self.queue and not self.inflight:
                    return True
                await self.wake.wait()
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await receiver

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                reply = _reply.decode(message)
                frame = self.inflight.pop(reply.ack, None) if reply.ack is not None else None
                if frame is None:
                    continue
                self.load.on_ack(frame, reply)
                self.wake.set()
        finally:
            self.wake.set()


class Load:
    """Shoppers over the tracker protocol (+ server-side events over HTTP), open or closed loop."""

    def __init__(self, stack: Stack, traffic: Traffic, options: SoakOptions, window: int | None) -> None:
        self.url = f"{stack.gateway_url}/v1/stream?key={stack.write_key}"
        self.api_url = stack.api_url
        self.auth = basic_auth(stack.write_key)
        self.traffic = traffic
        self.options = options
        self.window = window
        self.stats = LoadStats()
        self.sockets = [_Socket(self) for _ in range(options.connections)]
        self.http: deque[_Frame] = deque()
        self.closing = False
        self._order = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(s.run()) for s in self.sockets]
        self._tasks += [asyncio.create_task(self._http_lane()) for _ in range(2)]

    def dispatch(self, new_share: float) -> int:
        """Queue one visit; returns its events."""
        n, t, chunks = self.traffic.next_session(new_share, self.options.frame_size)
        socket = self.sockets[n % len(self.sockets)]
        browser = self.traffic.templates[t].browser
        for batch, first, end in chunks:
            self._order += 1
            (socket.queue if first < browser else self.http).append(_Frame(batch, n, t, first, end, self._order))
        socket.wake.set()
        sent = chunks[-1][2]
        self.stats.events_sent += sent
        return sent

    def queued(self) -> int:
        return sum(len(s.queue) for s in self.sockets)

    def on_ack(self, frame: _Frame, reply: _Reply) -> None:
        self.stats.ack_ms.append((time.monotonic() - frame.sent_at) * 1000)
        if reply.error is not None:
            self.stats.frame_errors += 1
            self.stats.error(f"frame error: {reply.error[:200]}")
            return
        rejected = frozenset(r.index for r in reply.rejected)
        self.stats.events_rejected += len(rejected)
        self.stats.events_acked += self.traffic.acked(frame.visitor, frame.template, frame.first, frame.end, rejected)

    async def _http_lane(self) -> None:
        """Server-side events (orders, e-mail opens) as the shop's back end sends them: batches of ≤ 20."""
        conn = HttpConnection(self.api_url)
        try:
            while True:
                if not self.http:
                    if self.closing:
                        return
                    await asyncio.sleep(0.02)
                    continue
                batch = [self.http.popleft() for _ in range(min(20, len(self.http)))]
                body = b'{"batch":[' + b",".join(f.batch for f in batch) + b"]}"
                request = conn.prepare(
                    "POST", "/v1/batch", body, {"Authorization": self.auth, "Content-Type": "application/json"}
                )
                for _ in range(40):
                    try:
                        reply = await conn.send(request)
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        await conn.close()
                        self.stats.error(f"HTTP {type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.5)
                        continue
                    if reply.status == 200:
                        for f in batch:
                            self.stats.events_acked += self.traffic.acked(f.visitor, f.template, f.first, f.end)
                        break
                    if reply.status not in (429, 503):
                        self.stats.error(f"HTTP {reply.status}: {reply.body[:200]!r}")
                        self.stats.http_errors += 1
                        break
                    await asyncio.sleep(0.5)
                else:
                    self.stats.http_errors += 1
        finally:
            await conn.close()

    async def pace(self, rate: float | None, seconds: float) -> None:
        """Open loop at `rate` events/s (visits queued when due), or closed loop when None."""
        options, started = self.options, time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            wave = (elapsed // (options.wave_s / 2)) % 2
            share = options.new_share_high if wave == 0 else options.new_share_low
            if rate is None:
                while self.queued() < len(self.sockets) * 8:
                    self.dispatch(share)
            else:
                while sent < rate * elapsed:
                    sent += self.dispatch(share)
            self.stats.queued_max = max(self.stats.queued_max, self.queued())
            await asyncio.sleep(0.005)

    async def finish(self, timeout_s: float = 60.0) -> None:
        """Stop queuing; wait for what is queued or in flight to be acked (up to `timeout_s`)."""
        self.closing = True
        for s in self.sockets:
            s.wake.set()
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        self.stats.unacked_at_end = sum(len(s.queue) + len(s.inflight) for s in self.sockets) + len(self.http)


# -- sampling --------------------------------------------------------------------------


def _dir_bytes(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


class Sampler:
    """One row of figures every few seconds, from /proc, Redis and the recovery directory."""

    def __init__(self, stack: Stack, traffic: Traffic, load: Load, extra_contacts: int) -> None:
        self.stack = stack
        self.traffic = traffic
        self.load = load
        self.extra_contacts = extra_contacts
        self.client = stack.client()
        self.aio = aioredis.Redis.from_url(stack.redis_url)
        self.recovery = stack.directory / "data" / "recovery"
        self.started = time.monotonic()
        self._last = (self.started, 0)

    async def take(self, probe: dict[str, Any] | None = None) -> dict[str, Any]:
        pids = self.stack.pids()
        me = os.getpid()
        rss = {name: sum(rss_bytes(p) for p in ps) for name, ps in pids.items()}
        rss["load generator"] = rss_bytes(me)
        cpu = {name: round(s, 2) for name, s in self.stack.cpu().items()}
        cpu["load generator"] = round(cpu_seconds(me), 2)
        info = self.client.info("memory")
        pipe = self.client.pipeline(transaction=False)
        for shard in range(SHARDS):
            pipe.memory_usage(keys.event_stream(shard), samples=0)
            pipe.xlen(keys.event_stream(shard))
        pipe.dbsize()
        replies = pipe.execute()
        lag = await ingest_lag_seconds(self.aio, SHARDS)
        now, stats = time.monotonic(), self.load.stats
        then, acked_before = self._last
        self._last = (now, stats.events_acked)
        row = {
            "t_s": round(now - self.started, 1),
            "contacts": self.traffic.contacts + self.extra_contacts,
            "events": self.traffic.events,
            "events_per_s": round((stats.events_acked - acked_before) / max(1e-3, now - then)),
            "rss": rss,
            "cpu_s": cpu,
            "redis_used_memory": int(info["used_memory"]),
            "redis_used_memory_rss": int(info["used_memory_rss"]),
            "event_stream_bytes": sum(int(b or 0) for b in replies[0:-1:2]),
            "event_stream_entries": sum(int(n) for n in replies[1:-1:2]),
            "redis_keys": int(replies[-1]),
            "recovery_bytes": _dir_bytes(self.recovery),
            "lag_s": round(lag, 3),
            # Others share the machine: the load average says how much.
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "ack_ms": percentiles(stats.ack_ms),
            "queued_frames_max": stats.queued_max,
            "probe": probe or {},
        }
        stats.ack_ms.clear()
        stats.queued_max = 0
        return row

    async def close(self) -> None:
        await self.aio.aclose()


# -- the run ------------------------------------------------------------------------------


def _drained(stack: Stack, timeout_s: float) -> float:
    """Seconds until the dataflow has read everything appended so far."""
    client = stack.client()
    targets = last_entry_ids(client)
    started = time.monotonic()
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: caught_up(client, targets), timeout_s, "the dataflow to catch up", interval=0.02)
    return time.monotonic() - started


async def _capacity(stack: Stack, options: SoakOptions, traffic: Traffic) -> dict[str, Any]:
    """Closed loop with the soak's own traffic; capacity = acked events / time until processed."""
    note(f"soak: measuring capacity ({options.capacity_seconds:.0f} s closed loop, then the drain) …")
    load = Load(stack, traffic, options, window=4)
    load.start()
    started = time.monotonic()
    await load.pace(None, options.capacity_seconds)
    await load.finish()
    acked_s = time.monotonic() - started
    drain_s = await asyncio.to_thread(_drained, stack, 300)
    total_s = time.monotonic() - started
    acked = load.stats.events_acked
    return {
        "events_acked": acked,
        "acked_events_per_s": round(acked / acked_s),
        "drain_after_s": round(drain_s, 2),
        "events_per_s": round(acked / total_s),
        "reconnects": load.stats.reconnects,
        "errors": load.stats.errors[:5],
    }


def _probe_figures(results: list[ProbeResult]) -> dict[str, Any]:
    visible = [ms for r in results for ms in r.visible_ms]
    pushed = [ms for r in results for ms in r.pushed_ms]
    return {
        "sent": sum(r.sent for r in results),
        "not_visible": sum(r.not_visible for r in results),
        "not_pushed": sum(r.not_pushed for r in results),
        "visible_ms": percentiles(visible),
        "pushed_ms": percentiles(pushed),
    }


async def _soak(stack: Stack, options: SoakOptions) -> dict[str, Any]:
    anonymous = build_templates(options.seed, options.templates, known=False)
    known = build_templates(options.seed, options.templates // 3, known=True)
    figures: dict[str, Any] = {"options": {**asdict(options), "wave_s": options.wave_s}}
    tally = Tally()
    extra = 0
    if options.capacity is None:
        cap_traffic = Traffic(options.seed + 1, "cap", 400_000, anonymous, known)
        figures["capacity"] = await _capacity(stack, options, cap_traffic)
        capacity = float(figures["capacity"]["events_per_s"])
        tally.merge(cap_traffic.tally())
        extra = cap_traffic.contacts
        del cap_traffic
    else:
        capacity = options.capacity
        figures["capacity"] = {"events_per_s": capacity, "given": True}
    rate = capacity * options.load_share
    figures["rate_events_per_s"] = round(rate)
    # Room for 1.6× the new visitors expected (about 8 events a visit, half of the visits new).
    traffic = Traffic(options.seed + 2, "soak", int(rate * options.seconds / 10) + 10_000, anonymous, known)
    load = Load(stack, traffic, options, window=None)
    note(
        f"soak: {rate:,.0f} events/s ({options.load_share:.0%} of {capacity:,.0f}) for "
        f"{options.minutes:g} min, a sample every {options.interval_s:g} s …"
    )
    sampler = Sampler(stack, traffic, load, extra)
    samples = [await sampler.take()]
    load.start()
    pacer = asyncio.create_task(load.pace(rate, options.seconds))
    probe_results: list[ProbeResult] = []
    i = 0
    try:
        while not pacer.done():
            probes = Probes(
                stack.gateway_url, stack.redis_url, stack.write_key, f"soak-probe-{i:04d}", options.probe_rate
            )
            try:
                # A probe slower than the settle time counts as not visible; `Probes` can fail
                # then (it forgets the probe while a read is under way), so settle generously.
                result = await probes.run(options.interval_s, settle_s=SETTLE_S)
            except Exception as exc:  # one probe window failing must not end the soak
                result = probes.result
                errors = figures.setdefault("probe_errors", [])
                at = round(time.monotonic() - sampler.started, 1)
                errors.append(f"{at} s: {type(exc).__name__}: {exc}"[:300])
            tally.merge(result.tally)
            result.tally = Tally()  # only the latencies are kept per window
            probe_results.append(result)
            sampler.extra_contacts += result.sent
            samples.append(await sampler.take(_probe_figures([result])))
            row = samples[-1]
            note(
                f"  {row['t_s']:6.0f} s  {row['events_per_s']:>7,} ev/s  contacts {row['contacts']:>9,}  "
                f"lag {row['lag_s']:.2f} s  probe p50 {row['probe']['visible_ms'].get('p50', '—')} ms  "
                f"dataflow RSS {row['rss'].get('dataflow', 0) / 2**20:,.0f} MiB"
            )
            i += 1
        await pacer
    except Exception as exc:  # keep what was measured; the report says what broke
        note(f"soak: stopped early: {type(exc).__name__}: {exc}")
        figures.setdefault("errors", {})["soak"] = f"{type(exc).__name__}: {exc}"[-2000:]
        pacer.cancel()
    finally:
        await load.finish()
    drain_s = await asyncio.to_thread(_drained, stack, 300)
    end = await sampler.take()
    await sampler.close()
    tally.merge(traffic.tally())
    note(f"soak: correctness — every contact's counters against what was acked ({len(tally.rows):,} rows) …")
    check = await asyncio.to_thread(wait_exact, stack.client(), tally, 120)
    stats = load.stats
    figures.update(
        {
            "samples": samples,
            "after_drain": end,
            "drain_after_s": round(drain_s, 2),
            "load": {
                "events_sent": stats.events_sent,
                "events_acked": stats.events_acked,
                "events_rejected": stats.events_rejected,
                "frame_errors": stats.frame_errors,
                "http_errors": stats.http_errors,
                "reconnects": stats.reconnects,
                "unacked_at_end": stats.unacked_at_end,
                "visitors": traffic.created,
                "visits": traffic.sessions,
                "visitor_table_full": traffic.capped,
                "errors": stats.errors[:5],
            },
            "probes": _probe_figures(probe_results),
            "correctness": check.as_dict(),
            "summary": summarise(samples, options.warmup_share, rate),
        }
    )
    return figures


def run(options: SoakOptions, workdir: Path) -> dict[str, Any]:
    """Start the stack, soak it, and return every figure (samples, summary, correctness)."""
    started = time.monotonic()
    with Stack(workdir / "soak") as stack:
        note(f"soak: starting the stack in {stack.directory} …")
        stack.start_all()
        try:
            import uvloop
        except ImportError:
            figures = asyncio.run(_soak(stack, options))
        else:
            figures = uvloop.run(_soak(stack, options))
        try:
            stack.check_alive()
        except RuntimeError as exc:
            figures.setdefault("errors", {})["stack"] = str(exc)[-2000:]
    figures["duration_s"] = round(time.monotonic() - started, 1)
    return figures


# -- judging the samples ----------------------------------------------------------------


def _fit(columns: list[list[float]], y: list[float]) -> tuple[list[float], float]:
    """Least squares of y on the columns plus a constant: coefficients (constant last) and R²."""
    a = np.column_stack([*(np.asarray(c, float) for c in columns), np.ones(len(y))])
    target = np.asarray(y, float)
    coef = np.linalg.lstsq(a, target, rcond=None)[0]
    residual = float(((target - a @ coef) ** 2).sum())
    spread = float(((target - target.mean()) ** 2).sum())
    return [float(c) for c in coef], (1.0 - residual / spread) if spread > 0 else 1.0


def growth(values: list[float], contacts: list[float], events: list[float]) -> dict[str, Any]:
    """How a series after warm-up relates to contacts and events: flat, per contact, or neither."""
    lo, hi = min(values), max(values)
    new_contacts = contacts[-1] - contacts[0]
    out: dict[str, Any] = {
        "warm": round(values[0]),
        "end": round(values[-1]),
        "min": round(lo),
        "max": round(hi),
        "max_over_min": round(hi / lo, 3) if lo > 0 else None,
        "flat": lo > 0 and hi <= lo * (1 + FLAT),
        "new_contacts": round(new_contacts),
        "bytes_per_new_contact": round((values[-1] - values[0]) / new_contacts) if new_contacts > 0 else None,
    }
    if len(values) >= 4 and new_contacts > 0:
        (per_contact, _), r2 = _fit([contacts], values)
        (_, _), r2_events = _fit([events], values)
        (joint_contact, joint_event, _), r2_joint = _fit([contacts, events], values)
        rise = max(1.0, abs(values[-1] - values[0]))
        out["fit_contacts"] = {"bytes_per_contact": round(per_contact), "r2": round(r2, 3)}
        out["fit_events_r2"] = round(r2_events, 3)
        out["fit_joint"] = {
            "bytes_per_contact": round(joint_contact),
            "bytes_per_event": round(joint_event, 2),
            "r2": round(r2_joint, 3),
            "event_share": round(joint_event * (events[-1] - events[0]) / rise, 2),
        }
        out["with_contacts"] = r2 >= MIN_R2 and out["fit_joint"]["event_share"] <= MAX_EVENT_SHARE
    else:
        out["with_contacts"] = False
    return out


def _verdict(check: dict[str, Any], may_grow: bool) -> tuple[bool, str]:
    if check["flat"]:
        return True, f"flat (max/min {check['max_over_min']:.3f})"
    if may_grow and check["with_contacts"]:
        return True, (
            f"grows with contacts: {check['fit_contacts']['bytes_per_contact']:,} B per contact "
            f"(R² {check['fit_contacts']['r2']:.2f})"
        )
    fit = check.get("fit_joint")
    detail = (
        (
            f"; joint fit {fit['bytes_per_contact']:,} B/contact + {fit['bytes_per_event']:,} B/event, "
            f"events {fit['event_share']:.0%} of the rise"
        )
        if fit
        else ""
    )
    return False, f"not flat (max/min {check['max_over_min']}){detail}"


def kept_up(after: list[dict[str, Any]], rate: float | None) -> dict[str, Any]:
    """Whether the stack kept up with the load after warm-up: lag bounded, the planned rate acked.

    Open-loop load on a stack that falls behind must pile up somewhere (the
    gateway's unacked frames, the generator's queues): RSS verdicts of such a
    run say more about the overload than about leaks.
    """
    lag = max(s["lag_s"] for s in after)
    span = after[-1]["t_s"] - after[0]["t_s"]
    achieved = (after[-1]["events"] - after[0]["events"]) / span if span > 0 else 0.0
    ok_rate = rate is None or achieved >= (1 - KEPT_UP_SHORTFALL) * rate
    passed = lag <= MAX_LAG_S and ok_rate
    verdict = (
        f"kept up: lag ≤ {lag:.2f} s, {achieved:,.0f} events/s acked"
        if passed
        else (
            f"fell behind: lag up to {lag:.1f} s, {achieved:,.0f} events/s acked"
            + (f" of {rate:,.0f} planned" if rate else "")
        )
    )
    return {"passed": passed, "verdict": verdict, "lag_max_s": lag, "achieved_events_per_s": round(achieved)}


def summarise(samples: list[dict[str, Any]], warmup_share: float, rate: float | None = None) -> dict[str, Any]:
    """Per process and per store: start / after warm-up / end, growth fits, and a verdict each."""
    after = [s for s in samples if s["t_s"] >= warmup_share * samples[-1]["t_s"]]
    contacts = [float(s["contacts"]) for s in after]
    events = [float(s["events"]) for s in after]
    checks: dict[str, Any] = {}
    for name in samples[-1]["rss"]:
        check = growth([float(s["rss"].get(name, 0)) for s in after], contacts, events)
        check["start"] = samples[0]["rss"].get(name, 0)
        check["passed"], check["verdict"] = _verdict(check, name in STATEFUL)
        checks[f"rss:{name}"] = check
    stores = {
        "redis_state": [float(s["redis_used_memory"] - s["event_stream_bytes"]) for s in after],
        "recovery_store": [float(s["recovery_bytes"]) for s in after],
    }
    for name, values in stores.items():
        check = growth(values, contacts, events)
        first = samples[0]
        check["start"] = (
            first["redis_used_memory"] - first["event_stream_bytes"]
            if name == "redis_state"
            else first["recovery_bytes"]
        )
        check["passed"], check["verdict"] = _verdict(check, True)
        checks[name] = check
    lags = [s["lag_s"] for s in after]
    thirds = [after[: max(1, len(after) // 3)], after[-max(1, len(after) // 3) :]]
    cpu: dict[str, Any] = {}
    for name in samples[-1]["cpu_s"]:
        spans = [(part[0], part[-1]) for part in thirds if len(part) > 1]
        cpu[name] = {
            "cores": [
                round((b["cpu_s"][name] - a["cpu_s"][name]) / max(1e-3, b["t_s"] - a["t_s"]), 3) for a, b in spans
            ],
            "us_per_event": [
                round((b["cpu_s"][name] - a["cpu_s"][name]) / max(1, b["events"] - a["events"]) * 1e6, 1)
                for a, b in spans
            ],
        }
    p50s = [[s["probe"]["visible_ms"]["p50"] for s in part if s["probe"].get("visible_ms")] for part in thirds]
    load = kept_up(after, rate)
    return {
        "warmup_s": round(after[0]["t_s"], 1),
        "samples_after_warmup": len(after),
        "kept_up": load,
        "checks": checks,
        "passed": load["passed"] and all(c["passed"] for c in checks.values()),
        "lag_s": {"max": max(lags), "median": float(np.median(lags))},
        "event_streams_max_entries": max(s["event_stream_entries"] for s in after),
        # First and last third after warm-up: CPU in cores and per event, per process.
        "cpu": cpu,
        "loadavg_1m": {
            "min": min(s.get("loadavg_1m", 0.0) for s in after),
            "max": max(s.get("loadavg_1m", 0.0) for s in after),
        },
        "probe_p50_ms_first_third": round(float(np.median(p50s[0])), 2) if p50s[0] else None,
        "probe_p50_ms_last_third": round(float(np.median(p50s[1])), 2) if p50s[1] else None,
    }

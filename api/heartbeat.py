"""The heartbeat sender: times the real ingest path end to end, every second.

One API process at a time holds a short Redis lease (`keys.heartbeat_lease`)
and, while it does, sends a heartbeat event (`state.heartbeat`) over a
websocket to the gateway exactly as the tracker sends a frame. The dataflow
records each heartbeat's arrival in `keys.heartbeat_arrivals()`; this
process watches that stream (a bounded blocking read) and records each
heartbeat's latency — from sending to seeing it processed, both on this
process's clock, so no clock skew between hosts enters — in
`keys.heartbeat_points()` for every API process's dashboard, and in the
`attimo_heartbeat_latency_seconds` histogram for Prometheus. A heartbeat not
seen within `heartbeat_lost_after_s`, or that could not be sent at all (the
gateway down), is recorded as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final, cast

import msgspec
import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from api.logging import log
from api.resources import redis_client
from state import keys
from state.heartbeat import HeartbeatPoint, decode_arrival, heartbeat_event, record_point, shard_ids
from state.settings import Settings

logger = logging.getLogger("attimo.heartbeat")

LATENCY: Final = Histogram(
    "attimo_heartbeat_latency_seconds",
    "Heartbeat event sent through the gateway until the dataflow processed it (end to end).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0))
LOST: Final = Counter("attimo_heartbeat_lost_total",
                      "Heartbeats not seen processed within the loss timeout, or that could not be sent.")

WATCH_BLOCK_MS: Final = 500
CONNECT_TIMEOUT_S: Final = 5.0
STOP_TIMEOUT_S: Final = 5.0
"""How long a stopping API waits for the sender to end before it goes on without it."""

# KEYS: lease. ARGV: owner, ttl ms. Taken when free, renewed when ours; 1 if we hold it.
_HOLD: Final = """
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""


class _Disconnected(Exception):
    """The gateway closed the socket or the arrivals watch stopped: connect again."""


class HeartbeatSender:
    """Sends heartbeats while it holds the lease and records what became of each."""

    def __init__(self, settings: Settings, client: aioredis.Redis, watch_client: aioredis.Redis,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.client = client
        self.watch_client = watch_client
        self.clock = clock
        self.interval_s = settings.heartbeat_interval_s
        self.lost_after_s = settings.heartbeat_lost_after_s
        self.lease_ms = int(1000 * max(3.0, 3 * self.interval_s))
        self.sender = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.ids = shard_ids(settings.stream_shards)
        self.url = f"{settings.gateway_url.rstrip('/')}/v1/stream?key={settings.write_key}"
        self.seq = 0
        self.pending: dict[int, float] = {}  # seq → sent at (epoch s), until seen or lost
        self.last_id: str | None = None  # the arrivals stream read so far (kept across reconnections)
        self._failing = False
        # A gateway still starting is not an outage: unsent heartbeats count lost only after this.
        self._grace_until = clock() + self.lost_after_s

    async def run(self) -> None:
        """Beat until cancelled; outages of the gateway or Redis are logged once and count heartbeats lost."""
        while True:
            try:
                if await self.hold_lease():
                    await self._beat_connected()
                else:
                    self.pending.clear()  # another process measures now
                    await asyncio.sleep(self.interval_s)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, WebSocketException, RedisError, _Disconnected) as exc:
                if not self._failing:
                    log(logger, logging.WARNING, "heartbeat cannot be sent; retrying", error=repr(exc)[:200])
                    self._failing = True
                with contextlib.suppress(RedisError, OSError):
                    await self._lose_unsent()
                await asyncio.sleep(self.interval_s)

    async def hold_lease(self) -> bool:
        """Take or renew the lease; True while this process is the one that beats."""
        held = await cast("Any", self.client.eval(_HOLD, 1, keys.heartbeat_lease(), self.sender, self.lease_ms))
        return bool(held)

    async def _beat_connected(self) -> None:
        """One websocket session: a beat every interval while the lease holds."""
        if self.last_id is None:
            self.last_id = await self._last_arrival_id()
        async with connect(self.url, open_timeout=CONNECT_TIMEOUT_S, close_timeout=1, compression=None) as ws:
            if self._failing:
                log(logger, logging.INFO, "heartbeat sending again")
                self._failing = False
            self._grace_until = 0.0  # connected once: from now on a gateway out of reach is an outage
            acks = asyncio.create_task(self._read_replies(ws))
            watch = asyncio.create_task(self._watch())
            try:
                loop = asyncio.get_running_loop()
                due = loop.time()
                while True:
                    for task in (acks, watch):
                        if task.done():
                            task.result()  # raises what ended it
                            raise _Disconnected("heartbeat socket or watch ended")
                    self.expire(self.clock())
                    await self.send(ws)
                    due += self.interval_s
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if due < loop.time():
                        due = loop.time()
                    if not await self.hold_lease():
                        return
            finally:
                # Their own ends are swallowed; a cancellation of this task is not (gather lets it through),
                # else a stopping API would wait on a sender that never stops.
                acks.cancel()
                watch.cancel()
                await asyncio.gather(acks, watch, return_exceptions=True)

    async def send(self, ws: ClientConnection) -> None:
        """Send the next heartbeat as a one-event tracker frame, through the next stream shard's id."""
        self.seq += 1
        now = self.clock()
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = heartbeat_event(self.sender, self.seq, now, self.ids[self.seq % len(self.ids)], stamp)
        self.pending[self.seq] = now
        await ws.send(msgspec.json.encode({"seq": self.seq, "sentAt": stamp, "batch": [event]}).decode())

    async def _read_replies(self, ws: ClientConnection) -> None:
        """Read the gateway's acks (a refused heartbeat is logged; it will count as lost)."""
        async for message in ws:
            try:
                reply = msgspec.json.decode(message)
            except msgspec.DecodeError:
                continue
            if isinstance(reply, dict) and (reply.get("error") or reply.get("rejected")):
                log(logger, logging.WARNING, "gateway refused a heartbeat", reply=str(reply)[:300])
        raise _Disconnected("the gateway closed the heartbeat socket")

    async def _last_arrival_id(self) -> str:
        newest = cast("list[tuple[bytes, Any]]", await self.client.xrevrange(keys.heartbeat_arrivals(), count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def _watch(self) -> None:
        """Follow the arrivals stream and record each of our pending heartbeats seen processed."""
        stream = keys.heartbeat_arrivals()
        while True:
            reply = cast("list[Any]", await self.watch_client.xread({stream: self.last_id or "0-0"}, count=100,
                                                                   block=WATCH_BLOCK_MS))
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode()
                    arrival = decode_arrival(fields)
                    if arrival is not None and arrival.sender == self.sender:
                        await self.arrived(arrival.seq, self.clock())

    async def arrived(self, seq: int, now: float) -> None:
        """Heartbeat `seq` was seen processed at `now`: record its latency."""
        sent_at = self.pending.pop(seq, None)
        if sent_at is None:
            return  # already counted lost, or a replay's second arrival
        latency = max(0.0, now - sent_at)
        LATENCY.observe(latency)
        await record_point(self.client, HeartbeatPoint(seq, sent_at, latency))

    def expire(self, now: float) -> list[int]:
        """Pending heartbeats older than the loss timeout: recorded lost (in the background), returned."""
        lost = [seq for seq, sent_at in self.pending.items() if now - sent_at > self.lost_after_s]
        for seq in lost:
            sent_at = self.pending.pop(seq)
            LOST.inc()
            asyncio.get_running_loop().create_task(self._record_quietly(HeartbeatPoint(seq, sent_at, None)))
        return lost

    async def _lose_unsent(self) -> None:
        """The heartbeat due now could not be sent: it is lost (pending ones expire as usual)."""
        now = self.clock()
        self.expire(now)
        if now >= self._grace_until and await self.hold_lease():
            self.seq += 1
            LOST.inc()
            await record_point(self.client, HeartbeatPoint(self.seq, now, None))

    async def _record_quietly(self, point: HeartbeatPoint) -> None:
        with contextlib.suppress(RedisError, OSError):
            await record_point(self.client, point)


@asynccontextmanager
async def heartbeat_running(settings: Settings, client: aioredis.Redis) -> AsyncIterator[None]:
    """The API lifespan's heartbeat task (none with `heartbeat_interval_s` 0), stopped when the block ends."""
    if settings.heartbeat_interval_s <= 0:
        yield
        return
    watch_client = redis_client(settings, blocking_reads=True)
    task = asyncio.create_task(HeartbeatSender(settings, client, watch_client).run())
    try:
        yield
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)  # a stop never hangs on the sender
        if not done:
            log(logger, logging.WARNING, "heartbeat sender did not stop; leaving it", timeout_s=STOP_TIMEOUT_S)
        await watch_client.aclose()

"""Latency probes: fresh visitors whose first page view is timed until its effect is seen."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.shoppers import Tally, encode
from benchmarks.ws_protocol import frame_bytes, iso_now


@dataclass
class ProbeResult:
    """Per probe event: sent → profile readable in Redis, and sent → decision pushed."""

    sent: int = 0
    visible_ms: list[float] = field(default_factory=list)
    pushed_ms: list[float] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    @property
    def not_visible(self) -> int:
        return self.sent - len(self.visible_ms)

    @property
    def not_pushed(self) -> int:
        return self.sent - len(self.pushed_ms)


class Probes:
    """Fresh visitors whose first page view is timed until its effect can be seen.

    Two clocks per probe, both from the scheduled send time: until the
    contact's profile is readable in Redis (what the decisions API serves;
    polled every millisecond), and until its decision is pushed back on the
    visitor's socket (its first event, a product view, gives it a decision
    document to push). Each probe socket carries 16 probes (the gateway knows a
    socket by at most 16 visitor ids); the next ones use a new socket.
    """

    PER_SOCKET = 16

    def __init__(self, gateway_url: str, redis_url: str, write_key: str, prefix: str, rate: float) -> None:
        self.url = f"{gateway_url}/v1/stream?key={write_key}"
        self.redis_url = redis_url
        self.prefix = prefix
        self.rate = rate
        self.result = ProbeResult()
        self._unseen: dict[str, float] = {}
        self._unpushed: dict[str, float] = {}
        self._sockets: list[ClientConnection] = []
        self._readers: list[asyncio.Task[None]] = []
        # seq → event: a probe counts (for the correctness check) once acked.
        self._unacked: dict[int, dict[str, Any]] = {}
        self.failed = 0

    def _on_message(self, message: str | bytes) -> None:
        now = time.monotonic()
        reply = orjson.loads(message)
        decision = reply.get("decision")
        if isinstance(decision, dict):
            # The frame names the visitor it is for (`id`): the decision itself is public and anonymous.
            sent = self._unpushed.pop(str(reply.get("id")), None)
            if sent is not None:
                self.result.pushed_ms.append((now - sent) * 1000)
        elif "ack" in reply:
            event = self._unacked.pop(reply["ack"], None)
            if event is not None and reply.get("accepted") == 1:
                self.result.tally.add(event)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                self._on_message(message)

    async def _watch(self, stop: asyncio.Event) -> None:
        import redis.asyncio as aioredis

        from state import keys

        client = aioredis.Redis.from_url(self.redis_url)
        try:
            while not stop.is_set() or self._unseen:
                ids = list(self._unseen)
                if ids:
                    found = await client.mget([keys.contact_profile(i) for i in ids])
                    now = time.monotonic()
                    for visitor, raw in zip(ids, found, strict=True):
                        # The probe may have been given up on while this read was in flight.
                        if raw is not None and (sent := self._unseen.pop(visitor, None)) is not None:
                            self.result.visible_ms.append((now - sent) * 1000)
                await asyncio.sleep(0.001)
        finally:
            await client.aclose()

    async def run(self, seconds: float, settle_s: float = 5.0) -> ProbeResult:
        interval = 1.0 / self.rate
        n = 0
        ws: ClientConnection | None = None
        stop = asyncio.Event()
        watcher = asyncio.create_task(self._watch(stop))
        start = time.monotonic()
        try:
            while time.monotonic() - start < seconds:
                if n % self.PER_SOCKET == 0 or ws is None or ws.state.name != "OPEN":
                    ws = await connect(self.url, compression=None, ping_interval=None)
                    self._sockets.append(ws)
                    self._readers.append(asyncio.create_task(self._read(ws)))
                due = start + n * interval
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                visitor = f"{self.prefix}-{n:06d}"
                # A product view: the first seed of a fresh visitor's decision document, so the
                # dataflow writes and pushes it (a bare page view leaves it with nothing to show).
                event = {
                    "type": "track",
                    "event": "Product Viewed",
                    "messageId": f"{visitor}-m",
                    "anonymousId": visitor,
                    "timestamp": iso_now(),
                    "properties": {"product_id": f"probe-mug-{n % 20}", "name": "Probe mug", "price": 12.0,
                                   "category": "probes"},
                    "context": {"page": {"path": "/p/probe-mug", "url": "https://shop.example/p/probe-mug"}},
                }
                self._unacked[n + 1] = event
                try:
                    await ws.send(frame_bytes(n + 1, b"[" + encode(event) + b"]").decode())
                except ConnectionClosed:
                    self.failed += 1
                else:
                    self._unseen[visitor] = self._unpushed[visitor] = due
                    self.result.sent += 1
                n += 1
            stop.set()
            settle = time.monotonic() + settle_s
            while (self._unseen or self._unpushed) and time.monotonic() < settle:
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            self._unseen.clear()
            await watcher
            for task in self._readers:
                task.cancel()
            for sock in self._sockets:
                with contextlib.suppress(Exception):
                    await sock.close()
        return self.result

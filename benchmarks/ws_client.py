"""The tracker protocol, spoken by many concurrent connections, open or closed loop.

The frame format is in `ws_protocol`, what is sent in `load_plan`. Open loop
sends each frame at its scheduled time whatever the acks do (so a slow
server shows up as latency, not as a politely lower rate); closed loop
keeps `window` frames in flight per connection, as the browser tracker does.
A dropped connection is reopened and its unacked frames resent, like the
tracker (same messageIds: the dataflow counts them once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from benchmarks.http_client import HttpConnection, basic_auth
from benchmarks.load_plan import Plan
from benchmarks.progress import Progress
from benchmarks.shoppers import Tally
from benchmarks.ws_protocol import frame_bytes

# The tracker retries forever with backoff; a benchmark gives up after this many in a row.
MAX_RECONNECTS = 20
DecisionHook = Callable[[dict[str, Any], float], None]


@dataclass
class LoadResult:
    """What a load phase achieved."""

    events_acked: int = 0
    events_rejected: int = 0
    frames_acked: int = 0
    frames_unacked: int = 0
    frame_errors: int = 0
    http_events_acked: int = 0
    http_errors: int = 0
    reconnects: int = 0
    elapsed_s: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    behind_schedule_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return (
            self.frames_unacked == 0
            and self.events_rejected == 0
            and self.http_errors == 0
            and self.frame_errors == 0
        )


class _Connection:
    """One simulated client socket (a proxy for many browsers) and its frames."""

    def __init__(
        self, runner: LoadRunner, frames: list[bytes], counts: list[int], offsets: list[float]
    ) -> None:
        self.runner = runner
        self.frames = frames
        self.counts = counts
        self.offsets = offsets
        self.todo: deque[int] = deque(range(len(frames)))
        self.acked: list[int] = []

    async def run(self) -> None:
        r = self.runner
        attempts = 0
        first = True
        while self.todo and (first or time.monotonic() < r.deadline):
            try:
                async with connect(
                    r.url, compression=None, max_size=None, open_timeout=30, ping_interval=None
                ) as ws:
                    attempts = 0
                    if first:
                        # Every socket is open before the clock starts: handshakes are not load.
                        first = False
                        r.connected_one()
                        await r.go.wait()
                    await self._session(ws)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                if first:
                    first = False
                    r.connected_one()
                attempts += 1
                r.result.reconnects += 1
                if len(r.result.errors) < 10:
                    r.result.errors.append(f"{type(exc).__name__}: {exc}")
                if attempts > MAX_RECONNECTS:
                    break
                await asyncio.sleep(0.2 * attempts)
        r.result.frames_unacked += len(self.todo)

    async def _session(self, ws: ClientConnection) -> None:
        r = self.runner
        inflight: dict[int, tuple[int, float]] = {}
        window = asyncio.Semaphore(r.window)
        done = asyncio.Event()

        async def receive() -> None:
            try:
                async for message in ws:
                    reply = orjson.loads(message)
                    if "ack" in reply:
                        sent = inflight.pop(reply["ack"], None)
                        if sent is None:
                            continue
                        index, at = sent
                        now = time.monotonic()
                        r.result.ack_ms.append((now - at) * 1000)
                        if "error" in reply:
                            r.result.frame_errors += 1
                        rejected = len(reply.get("rejected") or ())
                        r.result.events_rejected += rejected
                        r.result.events_acked += int(reply.get("accepted", 0))
                        r.result.frames_acked += 1
                        r.progress.advance(self.counts[index])
                        self.acked.append(index)
                        window.release()
                        if not self.todo and not inflight:
                            done.set()
                    elif "decision" in reply and r.on_decision is not None:
                        r.on_decision(reply["decision"], time.monotonic())
            finally:
                # Wake a sender waiting for window space, so it sees the socket is gone.
                window.release()

        receiver = asyncio.create_task(receive())
        seq = 0
        try:
            while self.todo and time.monotonic() < r.deadline:
                await window.acquire()
                if receiver.done():
                    break
                index = self.todo.popleft()
                if r.rate is not None:
                    due = r.started + self.offsets[index]
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        r.result.behind_schedule_ms = max(r.result.behind_schedule_ms, -delay * 1000)
                seq += 1
                inflight[seq] = (index, time.monotonic())
                await ws.send(frame_bytes(seq, self.frames[index]).decode())
            if inflight and not receiver.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), max(0.1, r.deadline - time.monotonic()))
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await receiver
            # Unacked frames go back in front, in order, to be resent.
            self.todo.extendleft(sorted((i for i, _ in inflight.values()), reverse=True))
        if receiver.done() and not receiver.cancelled() and receiver.exception() is not None:
            raise receiver.exception()  # type: ignore[misc]


class LoadRunner:
    """Sends a `Plan` over websockets (+ HTTP for server-side events) and measures it."""

    def __init__(
        self,
        gateway_url: str,
        api_url: str,
        write_key: str,
        plan: Plan,
        rate: float | None,
        time_limit_s: float,
        window: int = 4,
        label: str = "load",
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.url = f"{gateway_url}/v1/stream?key={write_key}"
        self.api_url = api_url
        self.write_key = write_key
        self.plan = plan
        self.rate = rate
        self.window = window if rate is None else 1_000_000
        self.time_limit_s = time_limit_s
        self.on_decision = on_decision
        self.result = LoadResult()
        self.progress = Progress(label, plan.events)
        self.started = 0.0
        self.deadline = float("inf")
        self.connecting = 0
        self.connected = 0
        self.go = asyncio.Event()
        self.connections: list[_Connection] = []
        self.http_acked: list[int] = []

    def acked_tally(self) -> Tally:
        """What the server acknowledged, event by event: the basis of the correctness check.

        A frame never acked (time limit, socket lost for good) is not counted;
        one acked twice (resent after a lost ack) counts once, as the
        dataflow dedups it by messageId.
        """
        tally = Tally()
        for conn in self.connections:
            for index in sorted(set(conn.acked)):
                for event in orjson.loads(conn.frames[index]):
                    tally.add(event)
        for i in sorted(set(self.http_acked)):
            for event in orjson.loads(self.plan.http_batches[i])["batch"]:
                tally.add(event)
        return tally

    def connected_one(self) -> None:
        """One more socket is open; the clock starts when all are."""
        self.connected += 1
        if self.connected >= self.connecting and not self.go.is_set():
            self.started = time.monotonic() + 0.01
            self.deadline = self.started + self.time_limit_s
            self.go.set()

    def _offsets(self) -> list[list[float]]:
        """Scheduled send time of every frame: round-robin over connections at `rate`."""
        offsets = [[0.0] * len(f) for f in self.plan.frames]
        if self.rate is None:
            return offsets
        cursors = [0] * len(self.plan.frames)
        sent = 0
        active = [c for c in range(len(self.plan.frames)) if self.plan.frames[c]]
        while active:
            still = []
            for c in active:
                i = cursors[c]
                offsets[c][i] = sent / self.rate
                sent += self.plan.frame_events[c][i]
                cursors[c] += 1
                if cursors[c] < len(self.plan.frames[c]):
                    still.append(c)
            active = still
        return offsets

    async def _http(self) -> None:
        batches = self.plan.http_batches
        if not batches:
            return
        auth = basic_auth(self.write_key)
        span = self.plan.events / self.rate if self.rate else 0.0
        lanes = 2

        async def lane(start: int) -> None:
            conn = HttpConnection(self.api_url)
            try:
                for i in range(start, len(batches), lanes):
                    if time.monotonic() > self.deadline:
                        self.result.http_errors += 1
                        continue
                    if span:
                        delay = self.started + span * i / len(batches) - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    request = conn.prepare(
                        "POST",
                        "/v1/batch",
                        batches[i],
                        {"Authorization": auth, "Content-Type": "application/json"},
                    )
                    for attempt in range(5):
                        reply = await conn.send(request)
                        if reply.status == 200:
                            self.http_acked.append(i)
                            self.result.http_events_acked += self.plan.http_events[i]
                            self.progress.advance(self.plan.http_events[i])
                            break
                        if reply.status in (429, 503) and attempt < 4:
                            await asyncio.sleep(0.5)
                            continue
                        self.result.http_errors += 1
                        if len(self.result.errors) < 10:
                            self.result.errors.append(f"HTTP {reply.status}: {reply.body[:200]!r}")
                        break
            finally:
                await conn.close()

        await asyncio.gather(*(lane(i) for i in range(lanes)))

    async def run(self) -> LoadResult:
        offsets = self._offsets()
        connections = [
            _Connection(self, f, n, o)
            for f, n, o in zip(self.plan.frames, self.plan.frame_events, offsets, strict=True)
        ]
        self.connections = connections
        active = [c for c in connections if c.frames]
        self.connecting = len(active)
        tasks = [asyncio.create_task(c.run()) for c in active]
        if not active:
            self.connected_one()
        await self.go.wait()
        with self.progress:
            await asyncio.gather(self._http(), *tasks)
        self.result.elapsed_s = time.monotonic() - self.started
        return self.result

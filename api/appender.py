"""One writer per process appends every frame's events, many frames per round trip.

Each socket awaiting its own XADD pipeline costs a Redis connection and a
round trip per frame; with hundreds of sockets that exhausted the client's
connection pool and bounded ingest by round trips. Here callers queue their
events and wait; a single task takes everything queued, writes it as one
pipelined entry per shard, and wakes every caller once Redis has answered.
Under light load a frame goes out immediately; under heavy load frames that
arrive during a round trip share the next one.

The same pipeline adds each source's events to the dashboard's count of the
current second (`state.rates`): two commands per round trip, none per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence

import redis.asyncio as aioredis

from state.events import Event
from state.rates import queue_counts
from state.streams import queue_appends


class StreamAppender:
    """Coalesces concurrent appends into one pipeline per round trip."""

    def __init__(self, client: aioredis.Redis, shards: int) -> None:
        self._client = client
        self._shards = shards
        self._pending: list[tuple[Sequence[Event], str | None, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def append(self, events: Sequence[Event], source: str | None = None) -> None:
        """Return once `events` are in Redis; raise what Redis raised otherwise.

        `source` (`state.rates`: gateway, http, heartbeat) is what the events
        count as in the per-second rates; None counts them nowhere.
        """
        if not events:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_forever())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, source, done))
        self._wake.set()
        await done

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[tuple[Sequence[Event], str | None, asyncio.Future[None]]]) -> None:
        events = [event for group, _, _ in batch for event in group]
        counts: Counter[str] = Counter()
        for group, source, _ in batch:
            if source is not None:
                counts[source] += len(group)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                queue_appends(pipe, events, self._shards)
                if counts:
                    queue_counts(pipe, counts, time.time())
                await pipe.execute()
        except Exception as exc:  # every waiting caller must hear about it
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)

    async def close(self) -> None:
        """Stop the writer task (pending callers are cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

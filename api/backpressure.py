"""Pushing back on ingest when the dataflow lags, instead of dropping events.

Every frame and request asks "are we overloaded?"; the answer comes from a
lag measurement (one pipelined round trip over all shards) that is cached for
a short interval, so the check costs nothing on the hot path.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.errors import OverloadedError
from state.errors import StoreError
from state.streams import ingest_lag_seconds


class Backpressure:
    """Tells ingest whether the dataflow is too far behind to accept more now."""

    def __init__(
        self,
        client: aioredis.Redis,
        shards: int,
        max_lag_s: float,
        check_interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.shards = shards
        self.max_lag_s = max_lag_s
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._checked_at = -math.inf
        self._lag_s = 0.0
        self._lock = asyncio.Lock()

    async def lag_s(self) -> float:
        """The dataflow's lag in seconds, measured at most once per interval."""
        if self._clock() - self._checked_at < self.check_interval_s:
            return self._lag_s
        async with self._lock:
            # Another task may have refreshed it while we waited for the lock.
            if self._clock() - self._checked_at >= self.check_interval_s:
                try:
                    self._lag_s = await ingest_lag_seconds(self.client, self.shards)
                except RedisError as exc:
                    raise StoreError(f"cannot measure ingest lag: {exc}") from exc
                self._checked_at = self._clock()
        return self._lag_s

    async def overloaded(self) -> bool:
        """True while the lag exceeds the configured maximum."""
        return await self.lag_s() > self.max_lag_s

    async def check(self) -> None:
        """Raise `OverloadedError` (→ 429 + Retry-After) when overloaded."""
        lag = await self.lag_s()
        if lag > self.max_lag_s:
            retry_after = min(60, max(1, math.ceil(lag - self.max_lag_s)))
            raise OverloadedError(lag, retry_after)

    async def wait_until_ready(self, max_wait_s: float) -> bool:
        """Wait, re-checking, until not overloaded; False if still overloaded after `max_wait_s`."""
        deadline = self._clock() + max_wait_s
        while await self.overloaded():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(self.check_interval_s, remaining))
        return True

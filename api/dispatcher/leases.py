"""Outbox shards are delivered by one dispatcher at a time: leases in Redis, and the time they are good for.

A lease is the key `keys.dispatcher_lease(shard)` holding the owner's id
with a TTL of `lease_s`, renewed every quarter of it. The owner knows a
lower bound of when it runs out: the moment it *sent* the command that set
or renewed it, plus `lease_s` — Redis started the TTL later than that. An
attempt begins only while the lease is good for longer than the attempt can
last (its timeout plus a margin), and every attempt is cut off at its
timeout, so by the time another dispatcher can take the shard every attempt
of the old owner has ended. That is what svix-webhooks PR #2181 got wrong
(a visibility timeout shorter than the HTTP timeout: two sends at once).

A process frozen longer than its margin (SIGSTOP, a paused VM) could still
overlap with the next owner; its writes cannot, because every write is
fenced by the lease (`api.dispatcher.ledger`).

Dispatchers also keep a membership entry, so that each takes about its
share of the shards (`ceil(shards / members)`) and a new one gets work.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final, cast

import redis.asyncio as aioredis

from state import keys

Clock = Callable[[], float]

# KEYS: lease. ARGV: owner, ttl ms. A free lease is taken; our own (a worker of ours that
# stopped, its attempts over) is taken again at once instead of after its TTL.
_ACQUIRE: Final = """
local holder = redis.call('GET', KEYS[1])
if holder == false then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """One held shard and until when (monotonic seconds) it is certainly still ours."""

    def __init__(self, shard: int, valid_until: float, clock: Clock) -> None:
        self.shard = shard
        self.valid_until = valid_until
        self.lost = False
        self._clock = clock
        self._changed = asyncio.Event()

    def remaining(self) -> float:
        """Seconds it is certainly still ours (≤ 0 once it may not be)."""
        return -1.0 if self.lost else self.valid_until - self._clock()

    def extend(self, valid_until: float) -> None:
        """Renewed: good until `valid_until`."""
        self.valid_until = max(self.valid_until, valid_until)
        self._signal()

    def lose(self) -> None:
        """Another dispatcher may own it now."""
        self.lost = True
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def good_for(self, seconds: float) -> bool:
        """Wait until the lease is good for at least `seconds` more; False once it is lost or runs out."""
        while True:
            left = self.remaining()
            if left >= seconds:
                return True
            if left <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=left)
            except TimeoutError:
                return False


class LeaseKeeper:
    """Takes, renews and gives back the leases of one dispatcher (`owner`)."""

    def __init__(self, client: aioredis.Redis, owner: str, lease_s: float, clock: Clock = time.monotonic,
                 wall: Clock = time.time) -> None:
        self._client = client
        self.owner = owner
        self._ttl_ms = max(1, int(lease_s * 1000))
        self._lease_s = self._ttl_ms / 1000
        self._clock = clock
        self._wall = wall
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def members(self) -> int:
        """Announce this dispatcher for another lease period; how many dispatchers are alive."""
        now = self._wall()
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.dispatcher_members(), {self.owner: now + self._lease_s})
            pipe.zremrangebyscore(keys.dispatcher_members(), "-inf", f"({now!r}")
            pipe.zcard(keys.dispatcher_members())
            *_, count = await pipe.execute()
        return max(1, int(count))

    async def leave(self) -> None:
        """Stop counting as a member (on a clean stop)."""
        await self._client.zrem(keys.dispatcher_members(), self.owner)

    async def acquire(self, shard: int) -> Lease | None:
        """Take a shard nobody else holds; None if somebody does."""
        sent = self._clock()
        taken = await self._acquire(keys=[keys.dispatcher_lease(shard)], args=[self.owner, self._ttl_ms])
        return Lease(shard, sent + self._lease_s, self._clock) if int(taken) == 1 else None

    async def renew(self, leases: list[Lease]) -> list[Lease]:
        """Extend each lease; the ones found lost are marked so and returned."""
        sent = self._clock()
        async with self._client.pipeline(transaction=False) as pipe:
            for lease in leases:
                await self._renew(keys=[keys.dispatcher_lease(lease.shard)], args=[self.owner, self._ttl_ms],
                                  client=pipe)
            results = cast("list[int]", await pipe.execute())
        lost = []
        for lease, kept in zip(leases, results, strict=True):
            if int(kept) == 1:
                lease.extend(sent + self._lease_s)
            else:
                lease.lose()
                lost.append(lease)
        return lost

    async def release(self, lease: Lease) -> None:
        """Give a shard back at once (only if it is still ours)."""
        lease.lose()
        await self._release(keys=[keys.dispatcher_lease(lease.shard)], args=[self.owner])


def fair_share(shards: int, members: int) -> int:
    """How many shards one of `members` dispatchers should hold."""
    return math.ceil(shards / max(1, members))

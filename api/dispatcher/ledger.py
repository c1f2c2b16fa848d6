"""What a dispatcher writes about each attempt: delivery state, acks, dead letters and counters, fenced by its lease.

Each write is one Lua script that first checks that this dispatcher still
holds the shard's lease, so a dispatcher that lost its shard (paused past
its lease, cut off from Redis) can no longer ack, dead-letter or count
anything there; the new owner's view is the only one.

- `begin` persists the attempt before it is made (attempts + 1, and when to
  try next should it never report back), so a crash mid-attempt still
  counts it and the schedule goes on from there;
- `failed` persists a failed attempt and the next attempt time;
- `delivered` and `dead` ack the outbox entry, drop the state and count it,
  `dead` also writing the dead letter — the entry is acked only then.

Counters (`keys.delivery_stats()`, field `<counter>:<target>`): `attempts`,
`failed_attempts`, `delivered`, `dead` (counts since the start), and
`retrying` (a gauge: actions with a failed attempt still being delivered).
"""

from __future__ import annotations

from typing import Final, cast

import redis.asyncio as aioredis

from api.dispatcher.errors import LeaseLostError
from api.dispatcher.records import DeadLetter, DeliveryState, encode
from state import keys

GROUP: Final = "dispatchers"
# Every dispatcher reads an outbox shard under this one consumer name: the lease makes
# one of them the reader at a time, and the next owner finds the entries its
# predecessor read but never acked pending under the same name.
CONSUMER: Final = "owner"
COUNTERS: Final = ("attempts", "failed_attempts", "delivered", "dead", "retrying")

_FENCE: Final = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"

# KEYS: lease, state, stats. ARGV: owner, state, ttl, target.
_BEGIN: Final = _FENCE + """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'attempts:' .. ARGV[4], 1)
return 1
"""

# KEYS: lease, state, stats. ARGV: owner, state, ttl, target, newly failing (1/0).
_FAILED: Final = _FENCE + """
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'failed_attempts:' .. ARGV[4], 1)
if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[3], 'retrying:' .. ARGV[4], 1) end
return 1
"""

# KEYS: lease, stream, state, stats, letter, letters.
# ARGV: owner, group, entry id, target, counter, was failing (1/0), failed now (1/0),
#       letter ('' for none), dead at, retention, action id.
_DONE: Final = _FENCE + """
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[3])
redis.call('HINCRBY', KEYS[4], ARGV[5] .. ':' .. ARGV[4], 1)
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[4], 'retrying:' .. ARGV[4], -1) end
if ARGV[7] == '1' then redis.call('HINCRBY', KEYS[4], 'failed_attempts:' .. ARGV[4], 1) end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[5], ARGV[8], 'EX', ARGV[10])
  redis.call('ZADD', KEYS[6], ARGV[9], ARGV[11])
end
return 1
"""

# KEYS: lease, stream, stats. ARGV: owner, group, entry id.
_DISCARD: Final = _FENCE + """
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'undecodable:outbox', 1)
return 1
"""

# KEYS: lease, stream, state, stats. ARGV: owner, group, entry id, target.
_ERASED: Final = _FENCE + """
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[3])
redis.call('HINCRBY', KEYS[4], 'erased:' .. ARGV[4], 1)
return 1
"""


class Ledger:
    """The fenced writes of one dispatcher (`owner`) for one outbox shard."""

    def __init__(self, client: aioredis.Redis, owner: str, shard: int, *, state_ttl_s: float,
                 dead_letter_retention_s: float) -> None:
        self._client = client
        self._owner = owner
        self._lease = keys.dispatcher_lease(shard)
        self._stream = keys.outbox(shard)
        self._state_ttl = max(1, int(state_ttl_s))
        self._retention = max(1, int(dead_letter_retention_s))
        self._begin = client.register_script(_BEGIN)
        self._failed = client.register_script(_FAILED)
        self._done = client.register_script(_DONE)
        self._discard = client.register_script(_DISCARD)
        self._erased = client.register_script(_ERASED)

    @staticmethod
    def _fenced(result: object) -> None:
        if int(cast("int", result)) != 1:
            raise LeaseLostError("the shard's lease is held by another dispatcher")

    async def begin(self, action_id: str, target: str, state: DeliveryState) -> None:
        """Persist an attempt about to be made."""
        self._fenced(await self._begin(keys=[self._lease, keys.delivery_state(action_id), keys.delivery_stats()],
                                       args=[self._owner, encode(state), self._state_ttl, target]))

    async def failed(self, action_id: str, target: str, state: DeliveryState, newly_failing: bool) -> None:
        """Persist a failed attempt and when the next one may begin."""
        self._fenced(await self._failed(
            keys=[self._lease, keys.delivery_state(action_id), keys.delivery_stats()],
            args=[self._owner, encode(state), self._state_ttl, target, int(newly_failing)]))

    async def delivered(self, entry_id: bytes, action_id: str, target: str, was_failing: bool) -> None:
        """The action was delivered: ack its entry, forget its state, count it."""
        await self._finish(entry_id, action_id, target, "delivered", was_failing, False, None)

    async def dead(self, entry_id: bytes, letter: DeadLetter, was_failing: bool, failed_now: bool) -> None:
        """The action is given up: keep the dead letter, ack its entry, forget its state, count it."""
        await self._finish(entry_id, letter.id, letter.target, "dead", was_failing, failed_now, letter)

    async def _finish(self, entry_id: bytes, action_id: str, target: str, counter: str, was_failing: bool,
                      failed_now: bool, letter: DeadLetter | None) -> None:
        self._fenced(await self._done(
            keys=[self._lease, self._stream, keys.delivery_state(action_id), keys.delivery_stats(),
                  keys.dead_letter(action_id), keys.dead_letters()],
            args=[self._owner, GROUP, entry_id, target, counter, int(was_failing), int(failed_now),
                  encode(letter) if letter is not None else b"", letter.dead_at if letter is not None else 0,
                  self._retention, action_id]))

    async def erased(self, entry_id: bytes, action_id: str, target: str) -> None:
        """The action's contact was erased: ack its entry unsent, forget its state, count it (`erased`)."""
        self._fenced(await self._erased(
            keys=[self._lease, self._stream, keys.delivery_state(action_id), keys.delivery_stats()],
            args=[self._owner, GROUP, entry_id, target]))

    async def discard(self, entry_id: bytes) -> None:
        """Ack an entry that holds no readable action (counted as `undecodable:outbox`)."""
        self._fenced(await self._discard(keys=[self._lease, self._stream, keys.delivery_stats()],
                                         args=[self._owner, GROUP, entry_id]))


async def read_stats(client: aioredis.Redis) -> dict[str, dict[str, int]]:
    """The counters by target: `{"webhook:crm": {"delivered": 3, …}, "email": {…}}`."""
    raw = cast("dict[bytes, bytes]", await client.hgetall(keys.delivery_stats()))
    out: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        counter, _, target = field.decode().partition(":")
        out.setdefault(target, {})[counter] = int(value)
    return out

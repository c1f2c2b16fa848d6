"""Dead letters for operators: list, read, delete, and replay into the outbox with a fresh schedule.

A dead letter is written by a dispatcher, together with the ack of its
outbox entry (`api.dispatcher.ledger`). Replaying one appends its action to
its contact's outbox shard again — the same action id, so the receiver can
still recognise it — with no delivery state, so it is tried at once and
then on the whole schedule; the letter goes in the same step.
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

from api.dispatcher.records import DeadLetter, decode_dead_letter
from state import keys
from state.actions import OUTBOX_FIELD, encode_action
from state.outbox import outbox_shard
from state.record_index import RecordIndex

# KEYS: letter, letters, outbox stream, delivery state. ARGV: action id, action.
_REPLAY: Final = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[4])
redis.call('XADD', KEYS[3], '*', '{OUTBOX_FIELD.decode()}', ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


DEAD_LETTERS: Final = RecordIndex(keys.dead_letters(), keys.dead_letter, decode_dead_letter)
"""Dead letters for the admin API: `get`, `delete`, `count`; `list_dead_letters` pages them."""


async def list_dead_letters(client: aioredis.Redis, limit: int, before: float | None, now: float,
                            retention_s: float) -> tuple[list[DeadLetter], int]:
    """Newest first, up to `limit` given up before `before`; and how many are kept in all.

    Index entries older than the retention are dropped first (their letters have expired).
    """
    await client.zremrangebyscore(DEAD_LETTERS.index_key, "-inf", f"({now - retention_s!r}")
    letters = await DEAD_LETTERS.page(client, limit, before)
    return letters, await DEAD_LETTERS.count(client)


async def replay_dead_letter(client: aioredis.Redis, action_id: str, outbox_shards: int) -> bool:
    """Put a dead letter's action back in the outbox with a fresh schedule; False if no such letter is kept."""
    letter = await DEAD_LETTERS.get(client, action_id)
    if letter is None:
        return False
    stream = keys.outbox(outbox_shard(letter.action.contact.contact_id, outbox_shards))
    replay = client.register_script(_REPLAY)
    done = await replay(keys=[keys.dead_letter(action_id), keys.dead_letters(), stream,
                              keys.delivery_state(action_id)],
                        args=[action_id, encode_action(letter.action)])
    return bool(done)

"""Dead letters for operators: list, read, delete, and replay into the outbox with a fresh schedule.

A dead letter is written by a dispatcher, together with the ack of its
outbox entry (`api.dispatcher.ledger`). Replaying one appends its action to
its contact's outbox shard again — the same action id, so the receiver can
still recognise it — with no delivery state, so it is tried at once and
then on the whole schedule; the letter goes in the same step.
"""

from __future__ import annotations

from typing import Final, cast

import redis.asyncio as aioredis

from api.dispatcher.records import DeadLetter, decode_dead_letter
from state import keys
from state.actions import OUTBOX_FIELD, encode_action
from state.outbox import outbox_shard

# KEYS: letter, letters, outbox stream, delivery state. ARGV: action id, action.
_REPLAY: Final = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[4])
redis.call('XADD', KEYS[3], '*', '{OUTBOX_FIELD.decode()}', ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


async def list_dead_letters(client: aioredis.Redis, limit: int, before: float | None, now: float,
                            retention_s: float) -> tuple[list[DeadLetter], int]:
    """Newest first, up to `limit` given up before `before`; and how many are kept in all.

    Index entries whose letter expired are dropped on the way.
    """
    index = keys.dead_letters()
    await client.zremrangebyscore(index, "-inf", f"({now - retention_s!r}")
    top = f"({before!r}" if before is not None else "+inf"
    rows = cast("list[bytes]", await client.zrevrangebyscore(index, top, "-inf", start=0, num=limit))
    raws = cast("list[bytes | None]", await client.mget([keys.dead_letter(r.decode()) for r in rows])) if rows else []
    gone = [row for row, raw in zip(rows, raws, strict=True) if raw is None]
    if gone:
        await client.zrem(index, *gone)
    letters = [decode_dead_letter(raw) for raw in raws if raw is not None]
    return letters, int(await client.zcard(index))


async def get_dead_letter(client: aioredis.Redis, action_id: str) -> DeadLetter | None:
    """One dead letter, if it is kept."""
    raw = cast("bytes | None", await client.get(keys.dead_letter(action_id)))
    return decode_dead_letter(raw) if raw is not None else None


async def delete_dead_letter(client: aioredis.Redis, action_id: str) -> bool:
    """Forget a dead letter (its action is not delivered); whether it was kept."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.dead_letter(action_id))
        pipe.zrem(keys.dead_letters(), action_id)
        removed, _ = await pipe.execute()
    return bool(removed)


async def replay_dead_letter(client: aioredis.Redis, action_id: str, outbox_shards: int) -> bool:
    """Put a dead letter's action back in the outbox with a fresh schedule; False if no such letter is kept."""
    letter = await get_dead_letter(client, action_id)
    if letter is None:
        return False
    stream = keys.outbox(outbox_shard(letter.action.contact.contact_id, outbox_shards))
    replay = client.register_script(_REPLAY)
    done = await replay(keys=[keys.dead_letter(action_id), keys.dead_letters(), stream,
                              keys.delivery_state(action_id)],
                        args=[action_id, encode_action(letter.action)])
    return bool(done)

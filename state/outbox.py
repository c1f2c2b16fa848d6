"""Appending actions to the outbox exactly once, and where each contact's actions go.

The dataflow's sink calls `queue_action` for every action an activation
decided; a replay after a crash decides the same action ids again, and the
script appends an action only if its id was never seen (the `seen` mark and
the append are one atomic step). Each contact's actions go to one outbox
shard, so the dispatcher that owns the shard delivers them in order.
"""

from __future__ import annotations

from typing import Any, Final

from state import keys
from state.actions import OUTBOX_FIELD, Action, encode_action
from state.shards import shard_of

# KEYS: the seen mark, the outbox stream. ARGV: the action, the mark's TTL in seconds.
APPEND_ONCE: Final = f"""
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[2], '*', '{OUTBOX_FIELD.decode()}', ARGV[1])
end
return false
"""


def outbox_shard(contact_id: str, shards: int) -> int:
    """The outbox shard of a contact's actions."""
    return shard_of(contact_id, shards)


def queue_action(pipe: Any, action: Action, shards: int, seen_ttl_s: float) -> None:
    """Add the exactly-once append of `action` to a pipeline (sync or async)."""
    stream = keys.outbox(outbox_shard(action.contact.contact_id, shards))
    pipe.eval(APPEND_ONCE, 2, keys.outbox_seen(action.id), stream, encode_action(action),
              max(1, int(seen_ttl_s)))

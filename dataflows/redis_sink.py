"""The Redis sink: writes every output of a batch in one round trip.

Writes are absolute or set-like (a profile is overwritten whole, an alias
set, a member added to a sorted set), so the replay after a crash, which
re-emits the outputs of events after the last snapshot, writes the same
values again instead of counting twice. Segment changes carry ids derived
from the contact's state, so a consumer can drop a replayed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.errors import SinkError
from dataflows.outputs import (
    AliasWrite,
    BackfillProgress,
    DecisionPush,
    MetricAdd,
    Output,
    ProfileDelete,
    ProfileWrite,
    SegmentChange,
)
from state import keys

PUSH_CHANNEL: Final = keys.decision_push_channel()
SEGMENT_CHANGES: Final = keys.segment_changes()
# The change stream is for workflows to consume promptly; keep about a million.
SEGMENT_CHANGES_MAXLEN: Final = 1_000_000


@dataclass(frozen=True)
class RedisSinkConfig:
    """Where to write."""

    redis_url: str


class _RedisSinkPartition(StatelessSinkPartition[tuple[str, Output]]):
    def __init__(self, config: RedisSinkConfig) -> None:
        self._client = redis.Redis.from_url(config.redis_url)

    def write_batch(self, items: list[tuple[str, Output]]) -> None:
        """Write (contact shard, output) pairs as the stateful steps emit them."""
        pipe = self._client.pipeline(transaction=False)
        for _, item in items:
            if isinstance(item, ProfileWrite):
                pipe.set(keys.contact_profile(item.contact_id), item.profile_json)
            elif isinstance(item, SegmentChange):
                members = keys.segment_members(item.segment_id)
                if item.entered:
                    pipe.zadd(members, {item.contact_id: item.at})
                else:
                    pipe.zrem(members, item.contact_id)
                pipe.xadd(SEGMENT_CHANGES, {
                    "id": item.change_id, "contact_id": item.contact_id, "segment_id": item.segment_id,
                    "event": "Segment Entered" if item.entered else "Segment Exited", "at": repr(item.at),
                }, maxlen=SEGMENT_CHANGES_MAXLEN, approximate=True)
            elif isinstance(item, DecisionPush):
                message = b'{"ids":' + orjson.dumps(item.ids) + b',"decision":' + item.decision_json + b"}"
                pipe.publish(PUSH_CHANNEL, message)
            elif isinstance(item, AliasWrite):
                pipe.set(keys.contact_alias(item.alias), item.contact_id)
            elif isinstance(item, ProfileDelete):
                pipe.delete(keys.contact_profile(item.contact_id))
            elif isinstance(item, BackfillProgress):
                pipe.hset(keys.backfill_progress(item.version), item.shard, item.contacts)
            elif isinstance(item, MetricAdd):
                pipe.hincrby(keys.metrics(), item.name, item.amount)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise SinkError(f"writing {len(items)} outputs: {exc}") from exc

    def close(self) -> None:
        self._client.close()


class RedisSink(DynamicSink[tuple[str, Output]]):
    """Every worker writes its own outputs concurrently."""

    def __init__(self, config: RedisSinkConfig) -> None:
        self._config = config

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisSinkPartition:
        return _RedisSinkPartition(self._config)

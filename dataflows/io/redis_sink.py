"""The Redis sink: writes every output of a batch in one round trip.

Writes are absolute or set-like (a profile is overwritten whole, an alias
set, a member added to a sorted set), so the replay after a crash, which
re-emits the outputs of events after the last snapshot, writes the same
values again instead of counting twice. Segment changes carry ids derived
from the contact's state, so a consumer can drop a replayed one.

That same idempotence lets the sink simply write the batch again when Redis
drops the connection: it waits for Redis (backing off up to a second,
logging the outage once) rather than raising, which would restart the
whole dataflow in a loop for as long as Redis is down. A command Redis
refuses (a key of the wrong type, say) is logged and counted; it does not
stop the others.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows import metrics
from dataflows.io.erase_sink import queue_erased, scrub_recent_events, scrub_traces
from dataflows.io.outputs import (
    ActionOut,
    AliasDelete,
    AliasWrite,
    BackfillProgress,
    BlockedEvents,
    ContactErased,
    ContactsSeen,
    DecisionDocWrite,
    DecisionPush,
    EraseDone,
    HeartbeatSeen,
    LearnedWrite,
    MetricAdd,
    Output,
    PreviewCount,
    ProfileDelete,
    ProfileWrite,
    Quarantined,
    RecsWrite,
    SegmentChange,
    TallyWrite,
)
from state import keys
from state.activity import queue_seen, queue_trim
from state.catalog_store import queue_learned
from state.decision_store import queue_doc_write
from state.erasure import queue_answer as queue_erase_answer
from state.frames import DecisionPush as Push
from state.frames import encode_push
from state.heartbeat import queue_arrival
from state.outbox import queue_action
from state.quarantine import queue_quarantine
from state.segment_changes import queue_segment_change
from state.segment_preview import queue_answer

log = logging.getLogger(__name__)

PUSH_CHANNEL: Final = keys.decision_push_channel()


@dataclass(frozen=True)
class RedisSinkConfig:
    """Where to write, and how long to keep quarantined items."""

    redis_url: str
    quarantine_max: int = 100_000
    quarantine_retention_s: float = 30 * 86_400.0
    max_retry_pause_s: float = 1.0
    redis_timeout_s: float = 5.0
    outbox_shards: int = 4
    # An action id is remembered this long: far beyond any replay after a crash.
    outbox_seen_ttl_s: float = 7 * 86_400.0
    # The dashboard's active visitors: ids older than this leave `keys.active_contacts()`, checked this often.
    active_window_s: float = 300.0
    active_trim_every_s: float = 5.0
    # The ingest streams an erased contact's entries are scrubbed from (`erase_sink`), and how long the
    # contacts remember message ids (`ATTIMO_DEDUP_WINDOW_S`): shared entries younger than half that are re-appended.
    stream_shards: int = 1
    dedup_window_s: float = 48 * 3600.0


class _RedisSinkPartition(StatelessSinkPartition[tuple[str, Output]]):
    def __init__(self, config: RedisSinkConfig) -> None:
        self._config = config
        self._client = redis.Redis.from_url(config.redis_url, socket_timeout=config.redis_timeout_s,
                                            socket_connect_timeout=config.redis_timeout_s)
        self._trimmed_at = 0.0

    def write_batch(self, items: list[tuple[str, Output]]) -> None:
        """Write (contact shard, output) pairs as the stateful steps emit them."""
        started = time.perf_counter()
        pause = 0.05
        outage_since: float | None = None
        while True:
            pipe = self._client.pipeline(transaction=False)
            self._queue(pipe, items)
            try:
                results: list[Any] = pipe.execute(raise_on_error=False)
                break
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("redis unreachable; the sink waits for it", extra={"error": str(exc)})
                time.sleep(pause)
                pause = min(self._config.max_retry_pause_s, pause * 2)
        if outage_since is not None:
            log.warning("redis is back; the sink wrote its batch",
                        extra={"outage_s": round(time.monotonic() - outage_since, 3)})
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        refused = [r for r in results if isinstance(r, redis.ResponseError)]
        if refused:
            log.error("redis refused writes", extra={"count": len(refused), "first": str(refused[0])})
        erased = [i for _, item in items if isinstance(item, ContactErased) for i in item.ids]
        if erased:
            self._scrub(erased)
        blocked = [item for _, item in items if isinstance(item, BlockedEvents)]
        if blocked:
            self._scrub_blocked(blocked)

    def _scrub_blocked(self, blocked: list[BlockedEvents]) -> None:
        """Events a tombstone stopped leave the streams too (their raw ids would stay until retention)."""
        try:
            scrub_recent_events(self._client, {i for b in blocked for i in b.ids}, self._config.stream_shards,
                                min(b.since_ms for b in blocked))
        except (redis.RedisError, OSError) as exc:
            log.error("could not drop stopped events from the streams", extra={"error": str(exc)})

    def _scrub(self, ids: list[str]) -> None:
        """An erase's second half: what no key names (streams, member sets, records), read and rewritten.

        Rare (once per erase and shard that held the contact), so it is done
        here, after the batch's writes; a failure is logged and the replay of
        the erase control after a restart does it again.
        """
        try:
            scrub_traces(self._client, ids, self._config.stream_shards, self._config.outbox_shards,
                         self._config.dedup_window_s)
        except (redis.RedisError, OSError) as exc:
            log.error("could not scrub an erased contact's traces", extra={"error": str(exc)})

    def _queue(self, pipe: Any, items: list[tuple[str, Output]]) -> None:
        # The dashboard's figures (`state.activity`): gathered over the batch, a few commands per batch.
        seen: dict[str, float] = {}
        recs_written = False
        for _, item in items:
            if isinstance(item, ProfileWrite):
                pipe.set(keys.contact_profile(item.contact_id), item.profile_json)
            elif isinstance(item, SegmentChange):
                queue_segment_change(pipe, item)
            elif isinstance(item, DecisionPush):
                pipe.publish(PUSH_CHANNEL, encode_push(Push(list(item.ids), msgspec.Raw(item.decision_json))))
            elif isinstance(item, AliasWrite):
                pipe.set(keys.contact_alias(item.alias), item.contact_id)
            elif isinstance(item, ProfileDelete):
                pipe.delete(keys.contact_profile(item.contact_id))
                pipe.zrem(keys.active_contacts(), item.contact_id)  # signed in (comes back as the contact) or purged
                seen.pop(item.contact_id, None)
            elif isinstance(item, PreviewCount):
                queue_answer(pipe, item.preview_id, item.field, item.answer)
            elif isinstance(item, BackfillProgress):
                pipe.hset(keys.backfill_progress(item.version), item.shard, item.contacts)
            elif isinstance(item, MetricAdd):
                pipe.hincrby(keys.metrics(), item.name, item.amount)
            elif isinstance(item, Quarantined):
                metrics.QUARANTINED.labels(item.record.stage).inc()
                queue_quarantine(pipe, item.record, self._config.quarantine_max,
                                 self._config.quarantine_retention_s)
            elif isinstance(item, ActionOut):
                queue_action(pipe, item.action, self._config.outbox_shards, self._config.outbox_seen_ttl_s)
            elif isinstance(item, TallyWrite):
                pipe.hset(item.key, item.field, item.value)
            elif isinstance(item, DecisionDocWrite):
                queue_doc_write(pipe, item.ids, item.doc_json, item.ttl_s)
            elif isinstance(item, RecsWrite):
                if item.value is None:
                    pipe.delete(item.key)
                else:
                    pipe.set(item.key, item.value)
                    recs_written = True
            elif isinstance(item, LearnedWrite):
                queue_learned(pipe, item.product_id, item.fields_json)
            elif isinstance(item, ContactsSeen):
                seen.update(dict.fromkeys(item.ids, item.at))
            elif isinstance(item, HeartbeatSeen):
                queue_arrival(pipe, item.arrival)
            elif isinstance(item, ContactErased):
                queue_erased(pipe, item.ids)
                for any_id in item.ids:
                    seen.pop(any_id, None)
            elif isinstance(item, EraseDone):
                queue_erase_answer(pipe, item.erase_id, item.field, item.answer, time.time())
            elif isinstance(item, AliasDelete):
                for alias in item.aliases:
                    pipe.delete(keys.contact_alias(alias), keys.decision_doc(alias))
        self._queue_dashboard(pipe, seen, recs_written)

    def _queue_dashboard(self, pipe: Any, seen: dict[str, float], recs_written: bool) -> None:
        """The batch's active ids and recommendations' freshness, and now and then the active set's trim."""
        if not (seen or recs_written):
            return
        now = time.time()
        if seen:
            queue_seen(pipe, seen)
            if now - self._trimmed_at >= self._config.active_trim_every_s:
                self._trimmed_at = now
                queue_trim(pipe, now, self._config.active_window_s)
        if recs_written:
            pipe.set(keys.recs_updated_at(), repr(now))

    def close(self) -> None:
        self._client.close()


class RedisSink(DynamicSink[tuple[str, Output]]):
    """Every worker writes its own outputs concurrently."""

    def __init__(self, config: RedisSinkConfig) -> None:
        self._config = config

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisSinkPartition:
        return _RedisSinkPartition(self._config)

"""A Bytewax source over Attimo's sharded Redis ingest streams.

One partition per stream shard. The resume state is the id of the last
entry emitted, so after a crash Bytewax resumes each shard exactly where the
last committed snapshot left it: no event skipped, and state replays none
twice. Reads never block (`XREAD BLOCK 0` would freeze the worker, timers and
snapshots included); an empty read sleeps a little longer each time, up to
a few milliseconds, so an idle flow costs little CPU and a busy one none.

Entries are trimmed only once a snapshot past them is surely committed: two
snapshot intervals plus the recovery backup interval after the snapshot that
recorded them. Without recovery nothing is trimmed, since a restart replays
the stream from the beginning.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflows import metrics
from dataflows.io.read_index import ReadIndex
from state import keys
from state.config_store import ConfigControl, decode_control
from state.erasure import ERASE_FIELD, EraseControl
from state.erasure import decode_control as decode_erase
from state.events import StreamEvent, Track
from state.heartbeat import HEARTBEAT_EVENT
from state.quarantine import QuarantineRecord, clip, queue_quarantine
from state.rates import PROCESSED, queue_counts
from state.segment_preview import PREVIEW_FIELD, PreviewControl
from state.segment_preview import decode_control as decode_preview
from state.streams import (
    CONTROL_FIELD,
    ENTRY_FIELD,
    UnreadableEvent,
    compare_ids,
    decode_entry_salvaging,
    entry_millis,
)

SourceItem = StreamEvent | ConfigControl | PreviewControl | EraseControl

log = logging.getLogger(__name__)

START_ID: Final = "0-0"
PROGRESS_EVERY_S: Final = 0.1
RETENTION_EVERY_S: Final = 1.0
# Bytes only a heartbeat's entry holds: one substring search spares the other entries a look at each event.
_HEARTBEAT_MARK: Final = b'"' + HEARTBEAT_EVENT.encode() + b'"'


@dataclass(frozen=True)
class StreamSourceConfig:
    """Where and how to read; every duration comes from settings."""

    redis_url: str
    shards: int
    read_count: int = 1000
    idle_poll_s: float = 0.001
    max_idle_poll_s: float = 0.01
    # None disables trimming (no recovery: restarts replay from the start).
    trim_after_s: float | None = None
    # Raw events older than this are trimmed (`ATTIMO_EVENT_RETENTION_S`), never ahead of the snapshot rule
    # above (with recovery) or of what was read (without); None: only the rule above.
    retention_s: float | None = None
    # Longest wait between reads while Redis is unreachable.
    max_outage_poll_s: float = 1.0
    quarantine_max: int = 100_000
    quarantine_retention_s: float = 30 * 86_400.0
    # A hung Redis must not hang the worker (timers and snapshots included).
    redis_timeout_s: float = 5.0


class _ShardPartition(StatefulSourcePartition[SourceItem, str]):
    def __init__(self, config: StreamSourceConfig, shard: int, resume_from: str | None) -> None:
        self._config = config
        self._shard = shard
        self._stream = keys.event_stream(shard)
        self._client = redis.Redis.from_url(config.redis_url, socket_timeout=config.redis_timeout_s,
                                            socket_connect_timeout=config.redis_timeout_s)
        self._last_id = resume_from or START_ID
        self._idle_s = 0.0
        self._awake_at: datetime | None = None
        self._progress_at = 0.0
        self._snapshots: deque[tuple[float, str]] = deque()
        self._outage_since: float | None = None
        # Events read since the last progress report, heartbeats left out: the dashboard's processed rate.
        self._read = 0
        self._index = ReadIndex(self._client, self._stream, self._last_id)  # the dashboard's entries behind
        self._events_read = metrics.EVENTS.labels(str(shard))
        self._lag = metrics.STREAM_LAG.labels(str(shard))
        self._lagging = False
        self._retention_at = 0.0

    def next_batch(self) -> list[SourceItem]:
        started = time.perf_counter()
        try:
            reply: Any = self._client.xread({self._stream: self._last_id}, count=self._config.read_count)
        except (redis.RedisError, OSError) as exc:
            self._wait_for_redis(exc)
            return []
        if self._outage_since is not None:
            log.warning("redis is back; reading again", extra={
                "stream": self._stream, "outage_s": round(time.monotonic() - self._outage_since, 3)})
            self._outage_since = None
        events: list[SourceItem] = []
        unreadable: list[QuarantineRecord] = []
        previews = 0
        if reply:
            for raw_id, fields in reply[0][1]:
                entry_id = raw_id.decode()
                payload = fields.get(ENTRY_FIELD)
                if payload is not None:
                    decoded, bad = decode_entry_salvaging(payload)
                    events.extend(decoded)
                    self._read += len(decoded)
                    if _HEARTBEAT_MARK in payload:
                        self._read -= _heartbeats(decoded)
                    unreadable += [self._record(entry_id, item) for item in bad]
                elif CONTROL_FIELD in fields:
                    try:
                        events.append(decode_control(fields[CONTROL_FIELD]))
                    except msgspec.DecodeError as exc:
                        unreadable.append(self._record(entry_id, UnreadableEvent(
                            0, fields[CONTROL_FIELD], f"unreadable config control: {exc}")))
                elif PREVIEW_FIELD in fields:  # a segment count preview (`state.segment_preview`): no event
                    previews += 1
                    try:
                        events.append(decode_preview(fields[PREVIEW_FIELD]))
                    except msgspec.DecodeError as exc:
                        unreadable.append(self._record(entry_id, UnreadableEvent(
                            0, fields[PREVIEW_FIELD], f"unreadable segment preview: {exc}")))
                elif ERASE_FIELD in fields:  # an erase (`state.erasure`): no event either
                    previews += 1
                    try:
                        events.append(decode_erase(fields[ERASE_FIELD]))
                    except msgspec.DecodeError as exc:
                        unreadable.append(self._record(entry_id, UnreadableEvent(
                            0, fields[ERASE_FIELD], f"unreadable erase control: {exc}")))
                self._last_id = entry_id
            self._index.read(reply[0][1])
        if unreadable:
            self._quarantine(unreadable)
        if reply:
            self._measure(reply[0][1], len(events) - previews, started)
        elif self._lagging:
            self._lag.set(0.0)
            self._lagging = False
        self._pace(bool(reply))
        self._report_progress()
        return events

    def _measure(self, entries: list[Any], events: int, started: float) -> None:
        """Metrics of one non-empty batch: its events, its read time, how old its oldest entry was."""
        self._events_read.inc(events)
        metrics.BATCH_SIZE.observe(events)
        metrics.READ_SECONDS.observe(time.perf_counter() - started)
        self._lag.set(max(0.0, time.time() - entry_millis(entries[0][0]) / 1000))
        self._lagging = True

    def _wait_for_redis(self, exc: BaseException) -> None:
        """Back off while Redis is unreachable; log the outage once."""
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("redis unreachable; waiting for it", extra={"stream": self._stream, "error": str(exc)})
        self._idle_s = min(self._config.max_outage_poll_s, max(self._idle_s * 2, 0.05))
        self._awake_at = datetime.now(UTC) + timedelta(seconds=self._idle_s)

    def _record(self, entry_id: str, item: UnreadableEvent) -> QuarantineRecord:
        return QuarantineRecord(
            id=f"{self._stream}:{entry_id}:{item.index}", at=time.time(), stage="source",
            error=clip(item.error, 2000), payload=clip(item.payload.decode("utf-8", "replace")),
            stream_entry=f"{self._stream}:{entry_id}")

    def _quarantine(self, records: list[QuarantineRecord]) -> None:
        metrics.QUARANTINED.labels("source").inc(len(records))
        for record in records:
            log.error("stream element quarantined", extra={"id": record.id, "error": record.error})
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for record in records:
                    queue_quarantine(pipe, record, self._config.quarantine_max,
                                     self._config.quarantine_retention_s)
                pipe.execute()
        except (redis.RedisError, OSError):
            log.warning("could not write quarantine records", extra={"count": len(records)})

    def _pace(self, got_data: bool) -> None:
        if got_data:
            self._idle_s = 0.0
            self._awake_at = None
            return
        base = self._config.idle_poll_s
        self._idle_s = min(self._config.max_idle_poll_s, self._idle_s * 2 if self._idle_s else base)
        self._awake_at = datetime.now(UTC) + timedelta(seconds=self._idle_s)

    def _report_progress(self) -> None:
        now = time.monotonic()
        if now - self._progress_at < PROGRESS_EVERY_S:
            return
        if self._config.trim_after_s is None and self._config.retention_s is not None \
                and now - self._retention_at >= RETENTION_EVERY_S:
            self._retention_at = now  # no recovery, so no snapshots: retention alone trims, behind the reads
            self._trim_to(self._last_id)
        self._progress_at = now
        read, self._read = self._read, 0
        try:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hset(keys.dataflow_progress(), str(self._shard), self._last_id)
                pipe.set(keys.dataflow_heartbeat(), time.time())
                if read:  # the dashboard's processed rate (state.rates), in the round trip made anyway
                    queue_counts(pipe, {PROCESSED: read}, time.time())
                if self._index.known is not None:
                    pipe.hset(keys.dataflow_read_index(), str(self._shard), self._index.known)
                pipe.execute()
        except (redis.RedisError, OSError):
            self._read += read  # an outage is logged by next_batch; progress is reported again 0.1 s later

    def next_awake(self) -> datetime | None:
        return self._awake_at

    def snapshot(self) -> str:
        self._trim_committed()
        return self._last_id

    def _trim_committed(self) -> None:
        if self._config.trim_after_s is None:
            return
        now = time.monotonic()
        self._snapshots.append((now, self._last_id))
        safe: str | None = None
        while self._snapshots and now - self._snapshots[0][0] >= self._config.trim_after_s:
            safe = self._snapshots.popleft()[1]
        if safe is not None:
            self._trim_to(safe)

    def _trim_to(self, safe: str) -> None:
        """Trim entries strictly older than `safe` — or, with a retention, than `safe` and the retention both.

        With a retention the stream keeps processed events until they are that
        old (the contact export lists them), and the trim is exact, so an
        event is gone once past it; without one, approximate (whole nodes).
        """
        retention = self._config.retention_s
        if retention is not None:
            cut = f"{max(0, int((time.time() - retention) * 1000))}-0"
            safe = cut if compare_ids(cut, safe) < 0 else safe
        if safe == START_ID:
            return
        try:
            self._client.xtrim(self._stream, minid=safe, approximate=retention is None)
        except (redis.RedisError, OSError):
            log.warning("could not trim", extra={"stream": self._stream})

    def close(self) -> None:
        self._client.close()


def _heartbeats(events: list[StreamEvent]) -> int:
    """How many of an entry's events are heartbeats (`state.heartbeat`), not the shop's."""
    return sum(1 for e in events if isinstance(e, Track) and e.event == HEARTBEAT_EVENT)


class RedisStreamSource(FixedPartitionedSource[SourceItem, str]):
    """Reads every shard stream; Bytewax gives each shard to one worker."""

    def __init__(self, config: StreamSourceConfig) -> None:
        self._config = config

    def list_parts(self) -> list[str]:
        return [str(shard) for shard in range(self._config.shards)]

    def build_part(self, step_id: str, for_part: str, resume_state: str | None) -> _ShardPartition:
        log.info("reading shard", extra={"shard": int(for_part), "resume_from": resume_state or START_ID})
        return _ShardPartition(self._config, int(for_part), resume_state)

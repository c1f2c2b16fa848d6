"""What the sink does when a contact shard forgets a contact: delete every trace Redis holds of its ids.

Two parts. `queue_erased` adds the deletes of the keys named by the ids
(profile, aliases, decision documents, active set) to the batch's pipeline,
after the batch's earlier writes, so a profile written in the same batch is
deleted too. `scrub_traces` then reads what is not named by an id and
rewrites it:

* segment member sets: the ids are removed from every one;
* the ingest streams: an entry holding only the contact's events is
  dropped (XDEL); an entry shared with other contacts' events (a server-side
  batch) is dropped and its other events appended again as a new entry.
  Redis cannot edit an entry in place, and pseudonymising would still leave
  a joinable record, so dropping is the choice. The re-appended events come
  after the erase: those the dataflow had already applied are dropped as
  resends (each contact remembers its message ids, `ATTIMO_DEDUP_WINDOW_S`),
  so only entries younger than half that window are re-appended; an older
  one's other events leave the raw stream (their effects stay in state);
* the segment-changes stream and the outbox streams: entries naming an id
  are dropped (the dispatcher also refuses an erased contact's action,
  `keys.tombstone`);
* quarantine records and dead letters naming an id are deleted (read
  through their index sorted sets).

This costs, per sink batch holding erasures (not per event), one pass over
those streams and records and one SCAN of the keyspace for member sets
(a deleted segment's set stays in Redis, so the configuration's list would
miss it); it is idempotent: the replay after a crash does it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import msgspec
import redis

from dataflows.shard.erase import event_ids
from state import keys
from state.streams import ENTRY_FIELD, decode_entry_salvaging, encode_entry, entry_millis

log = logging.getLogger(__name__)

_PAGE: Final = 1000


def queue_erased(pipe: Any, ids: Iterable[str]) -> None:
    """Delete the keys named by each id, and the id from the active set."""
    ids = list(ids)
    for any_id in ids:
        pipe.delete(keys.contact_profile(any_id), keys.contact_alias(any_id), keys.decision_doc(any_id))
    if ids:
        pipe.zrem(keys.active_contacts(), *ids)


def _marks(ids: Iterable[str]) -> list[bytes]:
    """How an id can appear inside stored JSON: as is, and JSON-escaped."""
    found: dict[bytes, None] = {}
    for any_id in ids:
        found[any_id.encode()] = None
        found[msgspec.json.encode(any_id)[1:-1]] = None
    return list(found)


def _mentions(value: bytes, marks: list[bytes]) -> bool:
    return any(mark in value for mark in marks)


def _entries(client: redis.Redis, stream: str, start: str = "-") -> Iterable[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of a stream from `start` on, a page at a time."""
    while True:
        page = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(stream, start, "+", count=_PAGE))
        yield from page
        if len(page) < _PAGE:
            return
        start = "(" + page[-1][0].decode()


def _scrub_events(client: redis.Redis, stream: str, ids: set[str], marks: list[bytes], start: str = "-",
                  reappend_after_ms: int = 0) -> int:
    """Drop the entries holding the ids' events; re-append other contacts' events of shared entries.

    Only entries appended after `reappend_after_ms` have their other events
    appended again: the dataflow drops those as resends (their contacts
    remember message ids for the dedup window). An older entry was applied
    and snapshotted long ago, and re-reading it could count it twice, so its
    other events just leave the raw stream (their effects stay in state).
    """
    dropped = 0
    for entry_id, fields in list(_entries(client, stream, start)):
        payload = fields.get(ENTRY_FIELD)
        if payload is None or not _mentions(payload, marks):
            continue
        events, unreadable = decode_entry_salvaging(payload)
        keep = [e for e in events if not ids.intersection(event_ids(e))]
        if len(keep) == len(events) and not any(_mentions(bad.payload, marks) for bad in unreadable):
            continue  # the id appeared in a property, not as an id of the event
        # An element that does not decode (already quarantined by the source) is not kept either.
        with client.pipeline(transaction=True) as pipe:
            pipe.xdel(stream, entry_id)
            if keep and entry_millis(entry_id) > reappend_after_ms:
                pipe.xadd(stream, {ENTRY_FIELD: encode_entry(keep)})
            pipe.execute()
        dropped += 1
    return dropped


def _scrub_stream(client: redis.Redis, stream: str, marks: list[bytes]) -> int:
    """Drop every entry one of whose fields names an id."""
    doomed = [entry_id for entry_id, fields in _entries(client, stream)
              if any(_mentions(value, marks) for value in fields.values())]
    if doomed:
        client.xdel(stream, *doomed)
    return len(doomed)


def _scrub_records(client: redis.Redis, index: str, key_of: Callable[[str], str], marks: list[bytes]) -> int:
    """Delete the records listed in `index` (JSON strings) that name an id, and their index entries."""
    deleted = 0
    members = [m.decode() for m in cast("list[bytes]", client.zrange(index, 0, -1))]
    for start in range(0, len(members), _PAGE):
        chunk = members[start:start + _PAGE]
        values = cast("list[bytes | None]", client.mget([key_of(m) for m in chunk]))
        doomed = [m for m, v in zip(chunk, values, strict=True) if v is not None and _mentions(v, marks)]
        if doomed:
            with client.pipeline(transaction=False) as pipe:
                pipe.delete(*[key_of(m) for m in doomed])
                pipe.zrem(index, *doomed)
                pipe.execute()
            deleted += len(doomed)
    return deleted


def scrub_recent_events(client: redis.Redis, ids: Iterable[str], stream_shards: int, since_ms: int) -> None:
    """Drop the stream entries of events a tombstone stopped: only entries appended since `since_ms`.

    A stopped event was appended a moment before the dataflow read it, so
    the pass covers seconds of stream, not the whole retention.
    """
    wanted = set(ids)
    if wanted:
        marks = _marks(wanted)
        for shard in range(stream_shards):
            _scrub_events(client, keys.event_stream(shard), wanted, marks, f"{max(0, since_ms)}-0", since_ms)


def scrub_traces(client: redis.Redis, ids: Iterable[str], stream_shards: int, outbox_shards: int,
                 dedup_window_s: float = 48 * 3600.0) -> None:
    """Remove the ids from what no key names: member sets, streams, quarantine, dead letters."""
    wanted = set(ids)
    if not wanted:
        return
    marks = _marks(wanted)
    for key in client.scan_iter(match=keys.segment_members("*"), count=_PAGE):
        client.zrem(key, *wanted)
    # Half the dedup window: a re-appended event is surely still remembered by its contact when re-read.
    reappend_after = int((time.time() - dedup_window_s / 2) * 1000)
    entries = sum(_scrub_events(client, keys.event_stream(shard), wanted, marks, "-", reappend_after)
                  for shard in range(stream_shards))
    entries += _scrub_stream(client, keys.segment_changes(), marks)
    entries += sum(_scrub_stream(client, keys.outbox(shard), marks) for shard in range(outbox_shards))
    records = _scrub_records(client, keys.quarantine_index(), keys.quarantine_record, marks)
    records += _scrub_records(client, keys.dead_letters(), keys.dead_letter, marks)
    log.info("erased contact's traces scrubbed", extra={"stream_entries": entries, "records": records})

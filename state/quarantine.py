"""Quarantine: what the dataflow could not process, kept for operators instead of retried forever.

An event that makes a step raise (a bug, or data an older version let in)
must neither stop the dataflow — which would then crash on it again after
every restart — nor vanish. The step that failed writes a record with the
event and the error; the contact's state is rolled back to before the event
and everything else goes on. Operators list the records through the admin
API, and after a fix can replay one (it is appended to the stream again and
applied like a new event) or delete it.

Records have deterministic ids (stage and message id, or stream entry), so
the replay after a crash overwrites instead of duplicating. The index keeps
the newest `max_records`; each record expires after `retention_s`.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from state import keys
from state.record_index import RecordIndex

Stage = Literal["source", "visitors", "contacts", "timers", "config", "handoff", "products"]
MAX_PAYLOAD_CHARS: Final = 64 * 1024


class QuarantineRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One item a dataflow step could not take.

    `payload` is the event (or stream element) as JSON text when it has one;
    `replayable` says whether it is an event the admin API can append again.
    """

    id: str
    at: float
    stage: Stage
    error: str
    payload: str = ""
    contact_id: str | None = None
    stream_entry: str | None = None
    replayable: bool = False


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(QuarantineRecord)


def clip(text: str, limit: int = MAX_PAYLOAD_CHARS) -> str:
    """`text` cut to `limit` characters (records stay small whatever failed)."""
    return text if len(text) <= limit else text[:limit] + "…"


def describe(exc: BaseException) -> str:
    """An error as a record shows it: its type and message, clipped."""
    return clip(f"{type(exc).__name__}: {exc}", 2000)


def queue_quarantine(pipe: Any, record: QuarantineRecord, max_records: int, retention_s: float) -> None:
    """Add the writes of one record to a pipeline (sync or async).

    The record and its index entry are idempotent under replay; the
    `quarantined` counter of the metrics hash, like the dataflow's other
    counters, may count a replayed record twice.
    """
    pipe.set(keys.quarantine_record(record.id), _encoder.encode(record), ex=max(1, int(retention_s)))
    pipe.zadd(keys.quarantine_index(), {record.id: record.at}, nx=True)
    pipe.zremrangebyrank(keys.quarantine_index(), 0, -(max_records + 1))
    pipe.hincrby(keys.metrics(), "quarantined", 1)


def decode_record(raw: bytes) -> QuarantineRecord:
    """A stored record."""
    return _decoder.decode(raw)


QUARANTINE: Final = RecordIndex(keys.quarantine_index(), keys.quarantine_record, decode_record)
"""The records for the admin API: `page` newest first, `get`, `delete`, `count`."""

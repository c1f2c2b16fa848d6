"""The `attimo:segment-changes` stream: contacts entering and leaving segments, as they happen.

The dataflow appends one entry per change, after the change is in the
member set; workflows (segment-entry triggers) consume it. Each entry is
one `SegmentChange` encoded as JSON in field `e`, like the event streams.
`id` numbers the contact's changes (`<contact id>:<n>`), so the replay after
a crash re-appends the same id and a consumer drops the duplicate.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from state import keys

ENTRY_FIELD: Final = b"e"
# The stream is for consumers to read promptly; keep about a million entries.
MAXLEN: Final = 1_000_000


class SegmentChange(msgspec.Struct, frozen=True, kw_only=True):
    """A contact entered (`entered`) or left a segment at `at` (epoch seconds)."""

    change_id: str = msgspec.field(name="id")
    contact_id: str
    segment_id: str
    entered: bool
    at: float

    @property
    def event(self) -> Literal["Segment Entered", "Segment Exited"]:
        """The change as an event name, as workflows and rules name it."""
        return "Segment Entered" if self.entered else "Segment Exited"


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(SegmentChange)


def queue_segment_change(pipe: object, change: SegmentChange) -> None:
    """Add the change's member-set update and stream entry to a pipeline (sync or async)."""
    members = keys.segment_members(change.segment_id)
    if change.entered:
        pipe.zadd(members, {change.contact_id: change.at})  # type: ignore[attr-defined]
    else:
        pipe.zrem(members, change.contact_id)  # type: ignore[attr-defined]
    pipe.xadd(keys.segment_changes(), {ENTRY_FIELD: _encoder.encode(change)},  # type: ignore[attr-defined]
              maxlen=MAXLEN, approximate=True)


def decode_change(fields: dict[bytes, bytes]) -> SegmentChange:
    """A stream entry's fields → the change."""
    return _decoder.decode(fields[ENTRY_FIELD])

"""Counting every event once: the message ids a contact has seen lately.

Clients resend: the tracker keeps up to 1 000 unacknowledged events and
resends them after a reconnect, Segment's libraries retry batches of 100 for
hours, and a crash makes the dataflow replay the stream after its last
snapshot (that replay is exact by itself: the state is restored to the
snapshot). So each contact remembers the ids of the events it applied,
within a window defined in time and in count: a resend is recognised when
the original was received less than `window_s` before it and fewer than
`max_ids` other events of the contact came in between. Both are settings
(48 h and 2 000 by default, twice the tracker's queue).

Ids are remembered as 64-bit BLAKE2b digests (8 bytes each, with a 4-byte
receive time): two different ids of one contact are mistaken for each other
with probability at most `max_ids / 2⁶⁴` per event (about 10⁻¹⁶ at the
defaults), where the CRC32 used before collided once in ~8 000 ids.
Times are receive times, stamped at ingest, so a replay makes the same
decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b
from typing import Final

import msgspec

DIGEST_BYTES: Final = 8
TIME_BYTES: Final = 4


@dataclass(frozen=True, slots=True)
class DedupWindow:
    """How long and how many message ids each contact remembers."""

    window_s: float = 48 * 3600.0
    max_ids: int = 2000


class SeenIds(msgspec.Struct, array_like=True, gc=False):
    """A contact's recent message-id digests, oldest first, with their receive times (unix seconds)."""

    digests: bytes = b""
    times: bytes = b""

    def __len__(self) -> int:
        return len(self.digests) // DIGEST_BYTES


def digest(message_id: str) -> bytes:
    """The 64-bit digest a message id is remembered by."""
    return blake2b(message_id.encode(), digest_size=DIGEST_BYTES).digest()


def _position(digests: bytes, wanted: bytes) -> int:
    """Index (in bytes) of `wanted` at an 8-byte boundary of `digests`, or -1."""
    at = digests.find(wanted)
    while at != -1 and at % DIGEST_BYTES:
        at = digests.find(wanted, at + 1)
    return at


def _time_at(times: bytes, index: int) -> int:
    start = index * TIME_BYTES
    return int.from_bytes(times[start:start + TIME_BYTES], "big")


def first_time(seen: SeenIds, message_id: str, received_at: float, window: DedupWindow) -> bool:
    """Remember `message_id`; False when it was seen within the window (a resend to drop).

    Ids older than the window, and the oldest beyond `max_ids`, are forgotten.
    """
    wanted = digest(message_id)
    if _position(seen.digests, wanted) != -1:
        return False
    newest = _time_at(seen.times, len(seen) - 1) if seen.digests else 0
    stamp = max(newest, int(received_at))  # kept non-decreasing, so forgetting is from the front
    digests = seen.digests + wanted
    times = seen.times + stamp.to_bytes(TIME_BYTES, "big")
    count = len(digests) // DIGEST_BYTES
    drop = max(0, count - window.max_ids)
    horizon = received_at - window.window_s
    while drop < count - 1 and _time_at(times, drop) < horizon:
        drop += 1
    if drop:
        digests, times = digests[drop * DIGEST_BYTES:], times[drop * TIME_BYTES:]
    seen.digests, seen.times = digests, times
    return True


def merge_seen(into: SeenIds, other: SeenIds, window: DedupWindow) -> None:
    """Remember `other`'s ids too (identity merge), oldest first, within the count bound."""
    if not other.digests:
        return
    rows: dict[bytes, int] = {}
    for seen in (into, other):
        for i in range(len(seen)):
            rows.setdefault(seen.digests[i * DIGEST_BYTES:(i + 1) * DIGEST_BYTES], _time_at(seen.times, i))
    ordered = sorted(rows.items(), key=lambda row: row[1])[-window.max_ids:]
    into.digests = b"".join(d for d, _ in ordered)
    into.times = b"".join(t.to_bytes(TIME_BYTES, "big") for _, t in ordered)

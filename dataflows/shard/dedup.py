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

Ids are remembered as 64-bit XXH3 digests with their receive time: two
different ids of one contact are mistaken for each other with probability
at most `1.25 · max_ids / 2⁶⁴` per event (about 10⁻¹⁶ at the defaults),
where the CRC32 used before collided once in ~8 000 ids. XXH3 rather than a
cryptographic hash: ids are not secrets, and it costs a third of BLAKE2b
per event. Times are receive times, stamped at ingest, so a replay makes
the same decisions.

Forgetting happens in batches, so each event costs O(1): ids are dropped
once the oldest is a tenth of the window past it, or the count a quarter
over its bound. So an id is remembered at least `window_s` and `max_ids`
(the guarantee) and at most 1.1 × `window_s` and 1.25 × `max_ids` (the
memory bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec
import xxhash

TIME_SLACK: Final = 0.1
COUNT_SLACK: Final = 0.25


@dataclass(frozen=True, slots=True)
class DedupWindow:
    """How long and how many message ids each contact remembers."""

    window_s: float = 48 * 3600.0
    max_ids: int = 2000


class SeenIds(msgspec.Struct, array_like=True, gc=False):
    """A contact's recent message-id digests → receive time (unix seconds), oldest first.

    A dict keeps insertion order, so the oldest id is the first key, and
    membership is one hash look-up however many ids are held.
    """

    ids: dict[int, int] = msgspec.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def digest(message_id: str) -> int:
    """The 64-bit digest a message id is remembered by."""
    return int(xxhash.xxh3_64_intdigest(message_id.encode()))


def first_time(seen: SeenIds, message_id: str, received_at: float, window: DedupWindow) -> bool:
    """Remember `message_id`; False when it was seen within the window (a resend to drop).

    Ids older than the window, and the oldest beyond `max_ids`, are forgotten.
    """
    wanted = digest(message_id)
    ids = seen.ids
    if wanted in ids:
        return False
    stamp = int(received_at)
    if ids:
        # Kept non-decreasing (events of one contact can arrive from two streams), so the oldest is first.
        stamp = max(stamp, ids[next(reversed(ids))])
    ids[wanted] = stamp
    horizon = received_at - window.window_s
    if len(ids) > window.max_ids * (1 + COUNT_SLACK) or ids[next(iter(ids))] < horizon - window.window_s * TIME_SLACK:
        newest = list(ids.items())[-window.max_ids:]
        seen.ids = {digest_: at for digest_, at in newest if at >= horizon or digest_ == wanted}
    return True


def merge_seen(into: SeenIds, other: SeenIds, window: DedupWindow) -> None:
    """Remember `other`'s ids too (identity merge), oldest first, within the count bound."""
    if not other.ids:
        return
    merged = {**other.ids, **into.ids}
    ordered = sorted(merged.items(), key=lambda row: row[1])[-window.max_ids:]
    into.ids = dict(ordered)

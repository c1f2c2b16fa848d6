"""Where the source stands in a stream, counted in entries: for the dashboard's "entries behind".

Redis counts every entry ever added to a stream (XINFO's `entries-added`);
if the source knows how many of those it has read, entries behind is the
difference, exact and O(1) to read. Entries between the resume position and
the stream's end at start-up have no count yet, so the source learns its
index once it reaches the last entry that existed when it started (whose
index is the `entries-added` of that moment) and counts from there; until
then the index is unknown (None). Trimming does not disturb it: it only
removes entries the source has long read, and `entries-added` never falls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from state.streams import compare_ids


class ReadIndex:
    """The count of entries up to and including the last one the source read, once known."""

    def __init__(self, client: redis.Redis, stream: str, resume_id: str) -> None:
        self.known: int | None = None
        self._goal: str | None = None
        self._goal_index = 0
        try:
            info: dict[str, Any] = client.xinfo_stream(stream)
        except redis.ResponseError:  # no such stream yet: nothing was ever added
            self.known = 0
            return
        except (redis.RedisError, OSError):
            return  # unknown until a restart can ask again; the dashboard shows it as such
        added = int(info["entries-added"])
        last = info["last-generated-id"]
        last_id = last.decode() if isinstance(last, bytes) else str(last)
        if compare_ids(resume_id, last_id) >= 0:
            self.known = added
        else:
            self._goal, self._goal_index = last_id, added

    def read(self, entries: Sequence[tuple[bytes, Any]]) -> None:
        """The source read these entries (XREAD's `(id, fields)` pairs, in stream order)."""
        if self.known is not None:
            self.known += len(entries)
            return
        goal = self._goal
        if goal is None or not entries or compare_ids(entries[-1][0].decode(), goal) < 0:
            return
        # The goal entry (index `_goal_index`) is in this batch: count the entries read after it.
        self.known = self._goal_index + sum(1 for raw_id, _ in entries if compare_ids(raw_id.decode(), goal) > 0)

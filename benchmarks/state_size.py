"""Bytes of per-contact state: in Redis and in the dataflow's recovery store.

Redis is measured two ways: `MEMORY USAGE` of what a contact owns (its
profile, sampled; its share of every segment's member set and of the
segment-change stream) and the growth of `INFO used_memory` per contact.

The recovery store is Bytewax's SQLite file per partition. Its size on disk
includes old epochs not yet collected and free pages, so the sum of the
*latest* snapshot of every state key (`snaps` rows with the highest
`snap_epoch` at or below the committed epoch) is reported too, per step.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import redis

from state import keys

SAMPLE = 2_000


def redis_breakdown(client: redis.Redis, contact_ids: list[str], segment_ids: list[str]) -> dict[str, Any]:
    """`MEMORY USAGE` per contact: sampled profiles, member sets and the change stream shared out."""
    contacts = max(1, len(contact_ids))
    sample = random.Random(1).sample(contact_ids, min(SAMPLE, len(contact_ids)))
    pipe = client.pipeline(transaction=False)
    for who in sample:
        pipe.memory_usage(keys.contact_profile(who))
    profiles = [u for u in pipe.execute() if u]
    pipe = client.pipeline(transaction=False)
    for segment_id in segment_ids:
        pipe.memory_usage(keys.segment_members(segment_id), samples=0)
        pipe.zcard(keys.segment_members(segment_id))
    replies = pipe.execute()
    set_bytes = sum(u or 0 for u in replies[0::2])
    members = {sid: int(n) for sid, n in zip(segment_ids, replies[1::2], strict=True)}
    changes = int(client.memory_usage(keys.segment_changes(), samples=0) or 0)
    profile = sum(profiles) / len(profiles) if profiles else 0.0
    return {
        "profile_memory_usage": round(profile),
        "segment_sets_bytes_per_contact": round(set_bytes / contacts),
        "segment_changes_stream_bytes_per_contact": round(changes / contacts),
        "segment_changes": int(client.xlen(keys.segment_changes())),
        "memory_usage_per_contact": round(profile + (set_bytes + changes) / contacts),
        "segment_members": members,
    }


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    # Read-only, so a running dataflow is never blocked by the benchmark.
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return list(db.execute(query))


def committed_epoch(recovery: Path) -> int:
    """The lowest committed epoch over the partitions (-1 before the first commit)."""
    epochs = []
    for path in sorted(recovery.glob("*.sqlite3")):
        rows = _rows(path, "SELECT MIN(commit_epoch) FROM commits")
        epochs.append(rows[0][0] if rows and rows[0][0] is not None else -1)
    return min(epochs, default=-1)


def wait_for_commit_after(recovery: Path, timeout_s: float) -> tuple[int, float]:
    """Wait until an epoch that began after now is committed; its snapshots hold all state so far."""
    started = time.monotonic()
    first = committed_epoch(recovery)
    # The epoch open now closes at the latest one interval later; the next commit after
    # that one covers it.
    while committed_epoch(recovery) < first + 2:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no snapshot committed after epoch {first} within {timeout_s:.0f} s")
        time.sleep(0.2)
    return committed_epoch(recovery), time.monotonic() - started


LATEST = """
SELECT s.step_id, COUNT(*), SUM(LENGTH(s.ser_change))
FROM snaps s
JOIN (SELECT step_id, state_key, MAX(snap_epoch) AS e FROM snaps
      WHERE snap_epoch <= (SELECT MAX(commit_epoch) FROM commits) GROUP BY step_id, state_key) l
  ON s.step_id = l.step_id AND s.state_key = l.state_key AND s.snap_epoch = l.e
WHERE s.ser_change IS NOT NULL
GROUP BY s.step_id
"""


def recovery_store(recovery: Path, contacts: int) -> dict[str, Any]:
    """Files on disk and the latest snapshot of every state key, in bytes and per contact."""
    files = sorted(p for p in recovery.iterdir() if ".sqlite3" in p.name)
    on_disk = sum(p.stat().st_size for p in files)
    steps: dict[str, dict[str, int]] = {}
    rows_total = 0
    for path in sorted(recovery.glob("*.sqlite3")):
        rows_total += int(_rows(path, "SELECT COUNT(*) FROM snaps")[0][0])
        for step_id, count, size in _rows(path, LATEST):
            entry = steps.setdefault(step_id, {"keys": 0, "bytes": 0})
            entry["keys"] += int(count)
            entry["bytes"] += int(size or 0)
    latest = sum(s["bytes"] for s in steps.values())
    per = max(1, contacts)
    return {
        "files": {p.name: p.stat().st_size for p in files},
        "file_bytes": on_disk,
        "file_bytes_per_contact": round(on_disk / per),
        "snapshot_rows": rows_total,
        "latest_snapshots": steps,
        "latest_snapshot_bytes": latest,
        "latest_snapshot_bytes_per_contact": round(latest / per),
    }

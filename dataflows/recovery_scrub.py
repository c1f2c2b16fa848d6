"""After an erase, make the Bytewax recovery store forget the contact too.

The contact shards forget an erased contact in their own state, so every
snapshot taken after the erase lacks it, and Bytewax deletes a key's older
snapshots once a newer one is committed (`snaps` GC at each commit). But
SQLite keeps deleted rows' bytes in free pages and in its write-ahead log
until they are reused. So once an erase is older than the time a snapshot
after it needs to be committed and the older ones collected (two snapshot
intervals plus the backup interval, the same bound the stream trimming
uses), this thread checkpoints and VACUUMs every recovery partition
(rewriting the file without free pages) and truncates the WAL, then marks
the erase `recovery_scrubbed_at` (`state.erasure`).

It runs beside the dataflow in the dataflow's process; SQLite's locking
orders it with Bytewax's own writes (a busy timeout, not a race). The cost
is one rewrite of the store per batch of erases, a few ms for a small store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import cast

import redis

from state import keys
from state.erasure import mark_scrubbed

log = logging.getLogger(__name__)


def vacuum_store(directory: Path, busy_timeout_s: float = 30.0) -> int:
    """Rewrite every recovery partition without free pages and truncate its WAL; how many were done."""
    done = 0
    for path in sorted(directory.glob("part-*.sqlite3")):
        connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            done += 1
        finally:
            connection.close()
    return done


class RecoveryScrubber(threading.Thread):
    """Vacuums the recovery store after each erase's snapshot is surely committed (daemon thread)."""

    def __init__(self, redis_url: str, directory: Path, delay_s: float, poll_s: float = 0.5) -> None:
        super().__init__(name="recovery-scrubber", daemon=True)
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._directory = directory
        self._delay_s = delay_s
        self._poll_s = poll_s
        self._stop = threading.Event()

    def run(self) -> None:
        failing = False
        while not self._stop.wait(self._poll_s):
            try:
                self.scrub_once(time.time())
            except (redis.RedisError, OSError, sqlite3.Error) as exc:
                if not failing:  # once per outage, not twice a second
                    log.warning("recovery store scrub failed; will retry", extra={"error": str(exc)})
                failing = True
            else:
                failing = False

    def scrub_once(self, now: float) -> list[str]:
        """Vacuum if some erase is old enough; the erase ids marked scrubbed."""
        due = cast("list[bytes]", self._client.zrangebyscore(keys.erasures_to_scrub(), "-inf",
                                                              now - self._delay_s))
        if not due:
            return []
        vacuum_store(self._directory)
        ids = [raw.decode() for raw in due]
        for erase_id in ids:
            mark_scrubbed(self._client, erase_id, time.time())
        log.info("recovery store vacuumed after erase", extra={"erasures": len(ids)})
        return ids

    def stop(self) -> None:
        """Ask the thread to end after its current pass."""
        self._stop.set()

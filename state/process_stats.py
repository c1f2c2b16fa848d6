"""Per-process CPU, memory and restarts, kept in Redis for the operators' dashboard and `attimo status`.

Every part (api, gateway, dataflow, dispatcher …) runs a reporter thread
that writes its own `ProcessStats` every second into one hash, field
`part:pid`. Readers keep the entries written in the last few seconds: a
process that died simply stops being fresh, and its field is deleted by the
next read once it is clearly stale. The supervisor (`attimo run`) counts the
restarts of each part in a second hash, which the reader joins in; the
processes themselves cannot know how often they were restarted.

The reporter is a daemon thread with its own blocking client so that it
never touches the process's event loop, and it swallows every failure: a
Redis outage must not take a part down, and the stats resume when Redis is
back.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from typing import Any, Final, cast

import msgspec
import psutil
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from state import keys

log = logging.getLogger(__name__)

FRESH_S: Final = 5.0
# A field this old belongs to a process that is gone: the reader deletes it.
DROP_AFTER_S: Final = 60.0
# The whole hash vanishes when no process has written for this long.
KEY_TTL_S: Final = 300
_REDIS_TIMEOUT_S: Final = 1.0


class ProcessStats(msgspec.Struct, frozen=True):
    """One process's latest resource use, as its reporter wrote it."""

    part: str  # "api", "gateway", "dataflow", "dispatcher", ...
    pid: int
    started_at: float  # epoch seconds
    cpu_percent: float  # CPU use over the last interval, 100 = one core
    rss_bytes: int
    restarts: int  # times the supervisor restarted this part (0 when not supervised)
    at: float  # epoch seconds when written


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(ProcessStats)
_lock = threading.Lock()
# pid of the process whose reporter runs: a forked child starts its own.
_started_in: int | None = None


def quick_client(redis_url: str) -> redis.Redis:
    """A blocking client that gives up after a second and never retries: stats wait on nobody."""
    return redis.Redis.from_url(redis_url, socket_timeout=_REDIS_TIMEOUT_S,
                                socket_connect_timeout=_REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0))


def _field(part: str, pid: int) -> str:
    return f"{part}:{pid}"


def sample(part: str, process: psutil.Process, started_at: float) -> ProcessStats:
    """The process's stats now; CPU is its use since the previous call on the same `process`."""
    with process.oneshot():
        cpu = process.cpu_percent(interval=None)
        rss = process.memory_info().rss
    return ProcessStats(part=part, pid=process.pid, started_at=started_at, cpu_percent=round(cpu, 1),
                        rss_bytes=int(rss), restarts=0, at=time.time())


def _report_forever(part: str, redis_url: str, interval_s: float) -> None:
    client = quick_client(redis_url)
    process = psutil.Process()
    started_at = process.create_time()
    process.cpu_percent(interval=None)  # the first reading only starts the interval
    field = _field(part, process.pid)
    atexit.register(_forget, client, field)
    failing = False
    while True:  # the first entry at once: readiness looks for it as soon as the part starts
        try:
            stats = sample(part, process, started_at)
            with client.pipeline(transaction=False) as pipe:
                pipe.hset(keys.process_stats(), field, _encoder.encode(stats))
                pipe.expire(keys.process_stats(), KEY_TTL_S)
                pipe.execute()
            if failing:
                log.info("process stats reported again", extra={"part": part})
            failing = False
        except Exception as exc:  # a reporter must never end: Redis may come back
            if not failing:
                log.warning("process stats not reported", extra={"part": part, "error": repr(exc)})
            failing = True
        time.sleep(interval_s)


def _forget(client: redis.Redis, field: str) -> None:
    """On a clean exit, take this process off the table at once (best effort)."""
    with contextlib.suppress(Exception):
        client.hdel(keys.process_stats(), field)


def start_process_reporter(part: str, redis_url: str, interval_s: float = 1.0) -> None:
    """Report this process's stats under `part` every `interval_s` from a daemon thread.

    Idempotent within a process (a second call does nothing); never raises
    into the caller; keeps trying while Redis is down.
    """
    global _started_in
    try:
        with _lock:
            if _started_in == os.getpid():
                return
            _started_in = os.getpid()
        thread = threading.Thread(target=_report_forever, args=(part, redis_url, max(0.05, interval_s)),
                                  name=f"process-stats-{part}", daemon=True)
        thread.start()
    except Exception as exc:  # stats are never worth failing a part's start
        log.warning("process stats reporter not started", extra={"part": part, "error": repr(exc)})


async def read_process_stats(client: redis.asyncio.Redis) -> list[ProcessStats]:
    """Entries written in the last 5 s, restarts joined from the supervisor's counts, sorted by part then pid.

    Entries stale for over a minute are deleted on the way (their process is gone).
    """
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.process_stats())
        pipe.hgetall(keys.part_restarts())
        replies = cast("list[dict[Any, Any]]", await pipe.execute())
    entries, restarts = replies
    now = time.time()
    fresh: list[ProcessStats] = []
    gone: list[Any] = []
    for field, raw in entries.items():
        try:
            stats = _decoder.decode(raw)
        except msgspec.DecodeError:
            gone.append(field)
            continue
        age = now - stats.at
        if age > DROP_AFTER_S:
            gone.append(field)
        elif age <= FRESH_S:
            count = restarts.get(stats.part.encode(), restarts.get(stats.part, 0))
            fresh.append(msgspec.structs.replace(stats, restarts=int(count)))
    if gone:
        await client.hdel(keys.process_stats(), *gone)
    return sorted(fresh, key=lambda s: (s.part, s.pid))


def reset_restarts(client: redis.Redis) -> None:
    """A new supervisor starts counting from 0 (best effort: Redis may not answer yet)."""
    with contextlib.suppress(redis.RedisError, OSError):
        client.delete(keys.part_restarts())


def count_restart(client: redis.Redis, part: str) -> None:
    """The supervisor restarted `part` once more (best effort: a restart must not wait on Redis)."""
    with contextlib.suppress(redis.RedisError, OSError):
        client.hincrby(keys.part_restarts(), part, 1)

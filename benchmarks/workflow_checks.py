"""What the workflows benchmark reads back to check its runs: the outbox, the workflow stats, deliveries."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import redis
from standardwebhooks import Webhook

from benchmarks.webhook_receiver import Attempt
from state import keys
from state.actions import OUTBOX_FIELD, Action, WebhookBody, decode_action

OUTBOX_SHARDS = 4  # the settings' default, which every stack of this benchmark runs with
PAGE = 5_000


@dataclass(frozen=True)
class Appended:
    """One outbox entry: the action, and when Redis appended it (from the entry id, ms)."""

    at: float
    action: Action


def outbox(client: redis.Redis, shards: int = OUTBOX_SHARDS) -> list[Appended]:
    """Every action in the outbox streams, read in pages."""
    found: list[Appended] = []
    for shard in range(shards):
        start = "-"
        while True:
            page: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
                keys.outbox(shard), start, "+", count=PAGE)
            for entry_id, fields in page:
                found.append(Appended(int(entry_id.split(b"-")[0]) / 1000, decode_action(fields[OUTBOX_FIELD])))
            if len(page) < PAGE:
                break
            start = "(" + page[-1][0].decode()
    return found


def outbox_length(client: redis.Redis, shards: int = OUTBOX_SHARDS) -> int:
    """How many entries the outbox streams hold."""
    pipe = client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.xlen(keys.outbox(shard))
    return sum(int(n) for n in pipe.execute())


def stats(client: redis.Redis, workflow_id: str) -> dict[str, int]:
    """A workflow's exact counters summed over stages and shards, as the admin API sums them."""
    raw: dict[bytes, bytes] = client.hgetall(keys.workflow_stats(workflow_id))  # type: ignore[assignment]
    counters: dict[str, int] = defaultdict(int)
    for field, value in raw.items():  # "<stage>:<shard>:<counter>"
        counters[field.decode().split(":", 2)[2]] += int(value)
    return dict(counters)


def queued(counters: dict[str, int]) -> int:
    """Actions a workflow's runs appended to the outbox, by its own count."""
    return sum(n for name, n in counters.items() if name.startswith("queued:"))


def settle(client: redis.Redis, workflow_ids: Iterable[str], quiet_s: float, timeout_s: float,
           appended: Callable[[], int] | None = None) -> bool:
    """Wait until the outbox (`appended` counts it) and the workflows' queued counts stop changing for `quiet_s`."""
    ids = list(workflow_ids)
    count = appended or (lambda: outbox_length(client))
    deadline = time.monotonic() + timeout_s
    last: Any = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = (count(), [queued(stats(client, w)) for w in ids])
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return True
        time.sleep(0.1)
    return False


def outbox_check(appended: list[Appended], counted: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Each action id appended once, and each workflow's outbox entries equal to its own `queued` count."""
    ids = Counter(a.action.id for a in appended)
    per_workflow = Counter(a.action.workflow_id for a in appended)
    mismatched = {w: {"outbox": per_workflow.get(w, 0), "queued": queued(c)}
                  for w, c in counted.items() if per_workflow.get(w, 0) != queued(c)}
    twice = sum(1 for n in ids.values() if n > 1)
    return {"actions": len(appended), "appended_twice": twice, "count_mismatches": mismatched,
            "correct": twice == 0 and not mismatched}


_body = msgspec.json.Decoder(WebhookBody)


def appended_ids(client: redis.Redis) -> set[str]:
    """Every action id ever appended to the outbox: each append sets its id's `seen` mark, kept for days.

    The outbox streams themselves cannot say: the dispatcher trims what it delivered.
    """
    prefix = keys.outbox_seen("")[:-2]  # "…:seen:{" + id + "}"
    return {key.decode()[len(prefix) + 1:-1] for key in client.scan_iter(match=prefix + "{*}", count=5_000)}


def entries_added(client: redis.Redis, shards: int = OUTBOX_SHARDS) -> int:
    """How many entries were ever appended to the outbox streams (trimmed ones included)."""
    added = 0
    for shard in range(shards):
        try:
            added += int(client.xinfo_stream(keys.outbox(shard))["entries-added"])
        except redis.ResponseError:
            continue  # no such stream: nothing was ever appended to it
    return added


def delivery_check(attempts: list[Attempt], want: set[str], secret: str, pending: int) -> dict[str, Any]:
    """Every action in `want` answered 2xx exactly once, nothing else delivered, every signature verified."""
    hook = Webhook(secret)
    delivered: Counter[str] = Counter()
    bad_signatures = 0
    for attempt in attempts:
        delivered[attempt.webhook_id] += attempt.ok
        try:
            hook.verify(attempt.body, attempt.headers)
            if _body.decode(attempt.body).data.id != attempt.webhook_id:
                bad_signatures += 1
        except Exception:
            bad_signatures += 1
    missing = len(want - {i for i, n in delivered.items() if n})
    twice = sum(1 for n in delivered.values() if n > 1)
    unexpected = len(set(delivered) - want)
    return {"actions": len(want), "missing": missing, "delivered_twice": twice, "unexpected": unexpected,
            "bad_signatures": bad_signatures, "pending": pending,
            "correct": missing == 0 and twice == 0 and unexpected == 0 and bad_signatures == 0 and pending == 0}


def pending(client: redis.Redis, shards: int = OUTBOX_SHARDS) -> int:
    """Outbox entries the dispatchers read and have not acked yet (0 when no group exists)."""
    total = 0
    for shard in range(shards):
        try:
            total += int(client.xpending(keys.outbox(shard), "dispatchers")["pending"])
        except redis.ResponseError:
            continue  # no consumer group on this shard yet
    return total


class OutboxWatcher:
    """Reads outbox entries soon after they are appended, for the moment of each append (a thread).

    The dispatcher trims what it delivered every few seconds, so an entry
    appended, delivered and trimmed between two reads is never seen:
    `missed()` counts those. The checks use `appended_ids`, not this.
    """

    def __init__(self, client: redis.Redis, shards: int = OUTBOX_SHARDS, interval_s: float = 0.05) -> None:
        self.client = client
        self.shards = shards
        self.interval_s = interval_s
        self.seen: list[Appended] = []
        self._last: dict[Any, Any] = {keys.outbox(s): "0-0" for s in range(shards)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-watcher", daemon=True)

    def __enter__(self) -> OutboxWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.poll()

    def poll(self) -> int:
        """Read what was appended since the last poll; how many entries."""
        got = 0
        while True:
            replies: list[Any] = self.client.xread(self._last, count=PAGE)  # type: ignore[assignment]
            if not replies:
                return got
            for stream, entries in replies:
                for entry_id, fields in entries:
                    at = int(entry_id.split(b"-")[0]) / 1000
                    self.seen.append(Appended(at, decode_action(fields[OUTBOX_FIELD])))
                self._last[stream.decode()] = entries[-1][0].decode()
                got += len(entries)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval_s)

    def missed(self) -> int:
        """Entries appended to the outbox that this watcher never saw (a trim came first)."""
        return entries_added(self.client, self.shards) - len(self.seen)


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used so far (/proc/stat), to tell others' load from ours."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def others(busy_before: float, ours: dict[str, float]) -> dict[str, float]:
    """What the rest of the machine did over an interval: CPU seconds not ours, and the load average."""
    return {"others_cpu_s": round(max(0.0, machine_busy_s() - busy_before - sum(ours.values())), 2),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def runqueue_wait_s(pid: int) -> float:
    """Seconds the threads of a process spent runnable but waiting for a CPU (/proc schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


class WaitMeter:
    """Run-queue wait per kind of process of a stack over an interval: how much CPU contention delayed each."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {name: sum(runqueue_wait_s(pid) for pid in pids) for name, pids in self.pids().items()}
        out["load generator"] = runqueue_wait_s(os.getpid())
        return out

    def start(self) -> WaitMeter:
        self._start = self._now()
        return self

    def stop(self) -> dict[str, float]:
        return {name: round(value - self._start.get(name, 0.0), 3) for name, value in self._now().items()}

"""`python -m benchmarks.explorer [--short|--full]` — what the operators' dashboard costs the dataflow.

Two parts of the dashboard are work in the dataflow: the contact explorer's
event log (`dataflows/capabilities/event_log.py`: an entry built and
appended for every event of every contact, kept in its snapshot, rendered
into its profile at every change) and the active-visitor set (each stage
tells the sink which contacts had events, one `ContactsSeen` per batch; the
sink writes them with one ZADD per batch). This measures both together on
one backlog — the live-state benchmark's week of shop traffic
(`livestate.build_backlog`), validated and encoded once as the gateway
appends it — drained by the real dataflow process (1 worker, recovery on,
default configuration) with `ATTIMO_EVENT_LOG_SIZE=0` and
`ATTIMO_ACTIVE_WINDOW_S=0` (*off*) and with the defaults 30 and 300 s (*on*),
alternating (off, on, on, off …, `ab_drains`) so a drift
in the machine's load touches both alike. The figure is the ratio of the
median rates; per CPU-second too, since on a shared machine the wall-clock
rate also measures the CPU share the dataflow got.

Also per drain: the mean size of a sample of profiles in Redis (what the
API serves and the explorer reads every 2 s) and of the recovery store on
disk (where each contact's snapshot, its log included, is kept).

Correct, per drain: every contact's counters equal the generator's tally,
nothing was quarantined; *on*: every sampled contact's profile lists its
recent events, at most 30, newest first, and as many as its events when it
had fewer, and every contact is in the active set; *off*: no profile lists
any and the active set is empty. (What the dashboard costs elsewhere — the
per-second rate counters in the source's existing progress write, the
heartbeat's one event a second — is in both.)

Results go to `benchmarks/results/explorer-<date>.json` and the
`## explorer run` section of `RESULTS.md` (the other sections stay).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import redis

from benchmarks import report
from benchmarks.ab_drains import compared, drain_alternately
from benchmarks.backlog import timed_drain
from benchmarks.livestate import LiveBacklog, build_backlog, preload
from benchmarks.progress import note
from benchmarks.sized_run import run_sized
from benchmarks.stack import Stack
from state import keys
from state.profile import decode_profile

NAME: Final = "explorer"
CONFIGS: Final = ("off", "on")
SETTINGS: Final = {"off": {"ATTIMO_EVENT_LOG_SIZE": "0", "ATTIMO_ACTIVE_WINDOW_S": "0"},
                   "on": {"ATTIMO_EVENT_LOG_SIZE": "30", "ATTIMO_ACTIVE_WINDOW_S": "300"}}
SAMPLE: Final = 500
TARGET_RATIO: Final = 0.9


@dataclass(frozen=True)
class Mode:
    """How big the measure is: backlog visitors, drains of each configuration."""

    name: str
    visitors: int
    repeats: int
    seed: int = 17


MODES: Final = {
    "tiny": Mode("tiny", 300, 1),  # a smoke run: checks, not figures
    "short": Mode("short", 4_000, 2),
    "full": Mode("full", 30_000, 3),
}


@contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """The stack's processes inherit this process's environment: set `settings` there for one drain."""
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log_check(client: redis.Redis, work: LiveBacklog, size: int) -> dict[str, Any]:
    """Sampled profiles: their recent events against the size in force, and their mean size in bytes."""
    counts = work.tally.counts
    sample = sorted(counts)[:SAMPLE]
    raws = client.mget([keys.contact_profile(c) for c in sample])
    wrong: list[str] = []
    listed = 0
    total_bytes = 0
    for contact_id, raw in zip(sample, raws, strict=True):
        if not isinstance(raw, bytes):
            wrong.append(contact_id)
            continue
        total_bytes += len(raw)
        recent = decode_profile(raw).recent_events
        listed += len(recent)
        expected = min(size, int(counts[contact_id][0]))
        times = [e.at for e in recent]
        if len(recent) != expected or times != sorted(times, reverse=True):
            wrong.append(contact_id)
    return {"sampled": len(sample), "recent_events_listed": listed, "wrong": wrong[:10],
            "profile_bytes_mean": round(total_bytes / max(1, len(sample))), "correct": not wrong}


def _bytes_under(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def drain(directory: Path, work: LiveBacklog, which: str) -> dict[str, Any]:
    """One drain of the backlog with the dashboard's dataflow work off or on, and its checks."""
    size = int(SETTINGS[which]["ATTIMO_EVENT_LOG_SIZE"])
    with Stack(directory) as stack, environment(SETTINGS[which]):
        stack.start_redis()
        client = stack.client()
        preload(client, work)
        row = timed_drain(stack, client, f"dashboard work {which}", work.events, work.sentinels, work.tally,
                          time_limit_s=max(90.0, work.events / 2_000))
        row["event_log"] = which
        row["event_log_size"] = size
        row["log"] = log_check(client, work, size)
        active = int(client.zcard(keys.active_contacts()))
        row["active_contacts"] = active
        active_right = active == (len(work.tally.counts) if which == "on" else 0)
        row["recovery_bytes"] = _bytes_under(directory / "data")
        quarantined = int(client.zcard(keys.quarantine_index()))
        row["check"]["correct"] = (row["check"]["correct"] and row["log"]["correct"] and active_right
                                   and not quarantined)
        stack.check_alive()
        return row


def measure(mode: Mode, workdir: Path) -> dict[str, Any]:
    """`mode.repeats` drains of each configuration, alternating; the ratio of the median rates."""
    started = time.monotonic()
    loadavg_at_start = [round(v, 2) for v in os.getloadavg()]
    note(f"explorer: building the backlog of {mode.visitors:,} visitors …")
    work = build_backlog(mode.seed, mode.visitors)

    def one(n: int, which: str) -> dict[str, Any]:
        note(f"explorer: drain {n + 1}/{2 * mode.repeats}, {work.events:,} events, dashboard work {which} …")
        return drain(workdir / f"drain-{n}", work, which)

    runs = drain_alternately(CONFIGS, mode.repeats, one)
    ab = compared(runs, "event_log", CONFIGS)
    cpu = ab["cpu_s_per_m_events"]

    def mean(field: str, which: str, inner: str | None = None) -> int:
        values = [float(r[field][inner] if inner else r[field]) for r in runs if r["event_log"] == which]
        return round(sum(values) / len(values))

    return {
        "loadavg_at_start": loadavg_at_start,
        "mode": mode.name,
        "visitors": mode.visitors,
        "events": work.events,
        "contacts": len(work.tally.counts),
        "runs": runs,
        **ab,
        # Events per second of dataflow CPU: the rate with a core of its own, whatever else the machine ran.
        "cpu_throughput_ratio": round(cpu["off"] / max(0.1, cpu["on"]), 2),
        "profile_bytes_mean": {w: mean("log", w, "profile_bytes_mean") for w in CONFIGS},
        "recovery_bytes": {w: mean("recovery_bytes", w) for w in CONFIGS},
        "correctness": {"correct": all(r["check"]["correct"] for r in runs)},
        "duration_s": round(time.monotonic() - started, 1),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


fmt = report._fmt


def _load(values: list[float] | None) -> str:
    return " / ".join(fmt(v) for v in values) if values else "—"


def render_explorer(doc: dict[str, Any]) -> str:
    """The `## explorer run` section of RESULTS.md."""
    f, m = doc["figures"], doc["machine"]
    cpu_based = f["cpu_throughput_ratio"]
    size, recovery = f["profile_bytes_mean"], f["recovery_bytes"]
    lines = [
        f"## {NAME} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, "
        f"Redis {m['redis']}; shared: load average {_load(f.get('loadavg_at_start'))} (1 / 5 / 15 min) at the "
        f"start, {_load(f.get('loadavg'))} at the end",
        f"- command: `{doc['command']}`; duration {fmt(f['duration_s'])} s",
        f"- backlog: {fmt(f['events'])} events from {fmt(f['visitors'])} visitors, {fmt(f['contacts'])} contacts; "
        "default configuration; *off*: the explorer's event log and the active-visitor set off "
        "(`ATTIMO_EVENT_LOG_SIZE=0`, `ATTIMO_ACTIVE_WINDOW_S=0`), *on*: the defaults (30 events, 300 s)",
        f"- **correct: {str(doc['correct']).lower()}**",
        f"- dataflow throughput per CPU-second, dashboard work on / off: **{fmt(cpu_based)}×** (goal ≥ "
        f"{TARGET_RATIO}×: {'met' if cpu_based >= TARGET_RATIO else '**missed**'}); wall-clock events/s "
        f"{fmt(f['throughput_ratio'])}× (the CPU the rest of the machine left it varied between drains)",
        f"- mean profile in Redis: {fmt(size['off'])} B off, {fmt(size['on'])} B on; recovery store on disk "
        f"after the drain (the snapshots of its epochs, every 10 s): {fmt(recovery['off'] / 2**20)} MiB off, "
        f"{fmt(recovery['on'] / 2**20)} MiB on\n",
        "| drain | dashboard work | events/s | dataflow CPU s / M events | mean profile B | active set | correct |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, run in enumerate(f["runs"], 1):
        lines.append(f"| {n} | {run['event_log']} | {fmt(run['events_per_s'])} | "
                     f"{fmt(run['cpu_s_per_m_events'])} | {fmt(run['log']['profile_bytes_mean'])} | "
                     f"{fmt(run.get('active_contacts', 0))} | {str(run['check']['correct']).lower()} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    sizes = ("4 000 visitors, two drains of each", "30 000 visitors, three drains of each")

    def summary(f: dict[str, Any]) -> str:
        return f"dashboard work on / off: {f['throughput_ratio']}× events/s, {f['cpu_throughput_ratio']}× per CPU-s"

    return run_sized(NAME, __doc__, MODES, sizes, measure, summary, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Dataflow throughput with the ten shop workflows on against none, on one pre-loaded backlog.

The backlog is the live-state benchmark's (`livestate.build_backlog`): a
week of shop traffic that ended a day ago, validated and encoded once as
the gateway appends it; each drain loads the same entries into a fresh
Redis and times the real dataflow process (1 worker, recovery on) from its
first read to the last shard's sentinel (`backlog.timed_drain`). Both
configurations are everything on (`livestate_config.everything_on`); one
adds `workflow_config.shop_workflows`. Drains alternate (none, ten, ten,
none …) so that a drift in the machine's load touches both alike.

Because the week ended a day ago, idle carts, inactivity and delays the
history started are due or running when the drain replays it: contacts
enter every kind of trigger, not only the event ones.

Correct, per drain: every contact's counters equal the generator's tally;
with workflows, every action id is in the outbox once and each workflow's
outbox entries equal the actions its own stats say it queued, and every
one of the ten entered at least one contact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import workflow_checks as checks
from benchmarks.ab_drains import compared, drain_alternately
from benchmarks.backlog import timed_drain
from benchmarks.livestate import LiveBacklog, build_backlog, preload
from benchmarks.livestate_config import publish
from benchmarks.progress import note
from benchmarks.stack import SHARDS, CpuMeter, Stack
from benchmarks.workflow_config import config, shop_workflows

CONFIGS = ("none", "ten")


def drain(directory: Path, work: LiveBacklog, which: str) -> dict[str, Any]:
    """One drain of the backlog with no workflows or the ten, and its checks."""
    workflows = shop_workflows() if which == "ten" else []
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        version = publish(stack.redis_url, config(workflows), SHARDS)
        preload(client, work)
        meter = CpuMeter(stack).start()
        waits = checks.WaitMeter(stack.pids).start()
        busy = checks.machine_busy_s()
        row = timed_drain(stack, client, f"workflows: {which}", work.events, work.sentinels, work.tally,
                          time_limit_s=max(90.0, work.events / 3_000))
        row["workflows"] = which
        # Over the dataflow's start, drain and check.
        row["machine"] = {**checks.others(busy, meter.stop()), "runqueue_wait_s": waits.stop()}
        row["config_version"] = version
        if workflows:
            ids = [w.id for w in workflows]
            row["settled"] = checks.settle(client, ids, quiet_s=1.0, timeout_s=30.0)
            counted = {w: checks.stats(client, w) for w in ids}
            appended = checks.outbox(client)
            outbox = checks.outbox_check(appended, counted)
            idle = [w for w, c in counted.items() if not c.get("entered")]
            row["entered"] = {w: c.get("entered", 0) for w, c in counted.items()}
            row["queued"] = {w: checks.queued(c) for w, c in counted.items()}
            row["held"] = {w: sum(n for k, n in c.items() if k.startswith("held:")) for w, c in counted.items()}
            row["outbox"] = outbox
            row["not_entered"] = idle
            row["check"]["correct"] = row["check"]["correct"] and outbox["correct"] and not idle
        stack.check_alive()
        return row


def measure(workdir: Path, visitors: int, repeats: int, seed: int,
            quiet: Callable[[], dict[str, float]] | None = None) -> dict[str, Any]:
    """`repeats` drains of each configuration, alternating; the ratio of the median rates.

    `quiet` runs before each drain (waiting for a shared machine to calm down) and says what it saw.
    """
    note(f"workflows throughput: building the backlog of {visitors:,} visitors …")
    work = build_backlog(seed, visitors)

    def one(n: int, which: str) -> dict[str, Any]:
        note(f"workflows throughput: drain {n + 1}/{2 * repeats}, {work.events:,} events, {which} workflows …")
        before = quiet() if quiet is not None else None
        row = drain(workdir / f"throughput-{n}", work, which)
        if before is not None:
            row["quiet_before"] = before
        return row

    runs = drain_alternately(CONFIGS, repeats, one)
    return {
        "visitors": visitors,
        "events": work.events,
        "contacts": len(work.tally.counts),
        "runs": runs,
        **compared(runs, "workflows", CONFIGS),
        "check": {"correct": all(r["check"]["correct"] for r in runs)},
    }

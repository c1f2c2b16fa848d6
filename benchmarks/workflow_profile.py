"""`python -m benchmarks.workflow_profile [--visitors N | --delays N]` — where the dataflow's time goes with workflows.

The throughput measure's drain (`workflow_throughput`), run in this process
under cProfile instead of as `python -m dataflows`: the same flow
(`dataflows.flow.build_flow` from the same settings, recovery on), the same
pre-loaded backlog, once with no workflows and once with the ten, each
stopped (SIGINT, as `attimo` stops it) when the last shard's sentinel has a
profile. Prints, per drain, the seconds spent inside each function of the
dataflow's own code (inclusive and self), and the difference ten − none for
the functions that grew most: what the workflows cost, by function.

py-spy would sample the real process; it is not installed here, and
cProfile needs the flow in the profiling thread (`bytewax.testing.run_main`
runs it in the current thread). cProfile's own overhead inflates
call-heavy code, so read the ratios, not the absolute seconds. The clock is
this process's CPU time, so others' load on a shared machine does not count.

`--delays N`: instead, N trial starts (`workflow_delays`) appended at once
and profiled until every follow-up is in the outbox: what a contact's
entry and its delay's end cost.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig
from bytewax.testing import run_main

from benchmarks.livestate import LiveBacklog, build_backlog, preload
from benchmarks.livestate_config import publish
from benchmarks.progress import note
from benchmarks.stack import SHARDS, Stack
from benchmarks.workflow_config import DELAYED_STEP, config, delay_workflow, shop_workflows
from benchmarks.workflow_delays import counted, trial_event
from dataflows.flow import build_flow
from dataflows.runner import configs_from, ensure_recovery_dir, recovery_dir
from state import keys
from state.config import ActiveConfig
from state.settings import Settings
from state.streams import append_events_sync
from state.validation import EventValidator, Limits

OURS = ("/dataflows/", "/state/")
DUMP: dict[str, Path | None] = {"dir": None}  # where --dump writes the pstats files


def _profiled(directory: Path, live: ActiveConfig, load: Callable[[redis.Redis], None],
              done: Callable[[redis.Redis], bool]) -> tuple[pstats.Stats, float]:
    """Run the flow in this thread under cProfile on a fresh Redis loaded by `load`, until `done`."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        publish(stack.redis_url, live, SHARDS)
        load(client)
        settings = Settings(redis_url=stack.redis_url, stream_shards=SHARDS, data_dir=directory / "data")
        flow = build_flow(*configs_from(settings))
        ensure_recovery_dir(recovery_dir(settings))
        recovery = RecoveryConfig(str(recovery_dir(settings)))

        def stop_when_done() -> None:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not done(client):
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=stop_when_done, daemon=True).start()
        # CPU time, not wall time: on a shared machine, time spent waiting for a CPU is not the code's.
        profiler = cProfile.Profile(time.process_time)
        started = time.monotonic()
        # The SIGINT lands in whichever of our functions runs; Bytewax may wrap it in its own error.
        with contextlib.suppress(KeyboardInterrupt, BytewaxRuntimeError):
            profiler.runcall(run_main, flow, epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
                             recovery_config=recovery)
        seconds = time.monotonic() - started
        if DUMP["dir"] is not None:
            DUMP["dir"].mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(DUMP["dir"] / f"{directory.name}.prof")
        return pstats.Stats(profiler), seconds


def _drain(directory: Path, work: LiveBacklog, which: str) -> tuple[pstats.Stats, float]:
    """One profiled drain of the backlog, with no workflows or the ten."""
    def done(client: redis.Redis) -> bool:
        return all(client.mget([keys.contact_profile(s) for s in work.sentinels]))

    live = config(shop_workflows() if which == "ten" else [])
    return _profiled(directory, live, lambda client: preload(client, work), done)


def _delays(directory: Path, contacts: int, delay_s: float) -> tuple[pstats.Stats, float]:
    """`contacts` trial starts appended at once, profiled until every follow-up is in the outbox."""
    def load(client: redis.Redis) -> None:
        validator = EventValidator(Limits())
        for first in range(0, contacts, 100):  # the most a batch may hold
            batch = [trial_event(n) for n in range(first, min(contacts, first + 100))]
            append_events_sync(client, validator.validate_all(batch, datetime.now(UTC)).accepted, SHARDS)

    def done(client: redis.Redis) -> bool:
        return counted(client, f"queued:{DELAYED_STEP}") >= contacts

    return _profiled(directory, config([*shop_workflows(), delay_workflow(delay_s)]), load, done)


def _by_function(stats: pstats.Stats) -> dict[str, tuple[float, float, int]]:
    """Our functions: name → (inclusive s, self s, calls)."""
    out: dict[str, tuple[float, float, int]] = {}
    for (path, line, name), (_cc, calls, self_s, incl_s, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if any(part in path for part in OURS):
            short = f"{path.split('/')[-2]}/{path.split('/')[-1]}:{line} {name}"
            out[short] = (incl_s, self_s, calls)
    return out


def _top(none: dict[str, tuple[float, float, int]], ten: dict[str, tuple[float, float, int]],
         top: int) -> dict[str, Any]:
    zero = (0.0, 0.0, 0)
    grew = sorted(((name, ten[name][0] - none.get(name, zero)[0], ten[name], none.get(name, zero)[2])
                   for name in ten), key=lambda row: -row[1])[:top]
    own = sorted(ten.items(), key=lambda kv: -kv[1][1])[:top]
    return {"grew_inclusive_s": grew, "ten_self_s": own}


def profile(visitors: int, seed: int, top: int) -> dict[str, Any]:
    """Both drains; the functions whose inclusive time grew most with the workflows."""
    work = build_backlog(seed, visitors)
    runs: dict[str, dict[str, tuple[float, float, int]]] = {}
    wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="attimo-wfprof-") as tmp:
        for which in ("none", "ten"):
            note(f"profiling the drain of {work.events:,} events with {which} workflows …")
            stats, wall[which] = _drain(Path(tmp) / which, work, which)
            runs[which] = _by_function(stats)
    return {"what": f"{work.events:,} events", "wall_s": wall, **_top(runs["none"], runs["ten"], top)}


def profile_delays(contacts: int, delay_s: float, top: int) -> dict[str, Any]:
    """Trial starts through the delay workflow: where each contact's entry and due cost go."""
    with tempfile.TemporaryDirectory(prefix="attimo-wfprof-") as tmp:
        note(f"profiling {contacts:,} contacts through a {delay_s:g} s delay …")
        stats, wall = _delays(Path(tmp), contacts, delay_s)
    return {"what": f"{contacts:,} contacts through the delay", "wall_s": {"delays": wall},
            **_top({}, _by_function(stats), top)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workflow_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=10_000, help="backlog size of the drains")
    parser.add_argument("--delays", type=int, default=0, help="profile N contacts through a delay instead")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", type=Path, default=None, help="also write each run's pstats file here")
    args = parser.parse_args(argv)
    DUMP["dir"] = args.dump
    result = profile_delays(args.delays, 5.0, args.top) if args.delays else profile(args.visitors, 49, args.top)
    print(f"{result['what']}; wall s under cProfile: " +
          ", ".join(f"{k} {v:.1f}" for k, v in result["wall_s"].items()))
    print("\ninclusive seconds, ten − none (then ten's inclusive s, self s, calls; calls with none):")
    for name, delta, (incl, own, calls), calls_none in result["grew_inclusive_s"]:
        print(f"  {delta:+8.2f}  {incl:8.2f} {own:8.2f} {calls:>10,} {calls_none:>10,}  {name}")
    print("\nself seconds with ten workflows:")
    for name, (incl, own, calls) in result["ten_self_s"]:
        print(f"  {own:8.2f} {incl:8.2f} {calls:>10,}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

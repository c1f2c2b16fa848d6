"""`python -m benchmarks.workflow_profile [--visitors N]` — where the dataflow's time goes with the ten workflows on.

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
call-heavy code, so read the ratios, not the absolute seconds.
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
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig
from bytewax.testing import run_main

from benchmarks.livestate import LiveBacklog, build_backlog, preload
from benchmarks.livestate_config import publish
from benchmarks.progress import note
from benchmarks.stack import SHARDS, Stack
from benchmarks.workflow_config import config, shop_workflows
from dataflows.flow import build_flow
from dataflows.runner import configs_from, ensure_recovery_dir, recovery_dir
from state import keys
from state.settings import Settings

OURS = ("/dataflows/", "/state/")


def _drain(directory: Path, work: LiveBacklog, which: str) -> tuple[pstats.Stats, float]:
    """One profiled drain; its stats and wall seconds."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        publish(stack.redis_url, config(shop_workflows() if which == "ten" else []), SHARDS)
        preload(client, work)
        settings = Settings(redis_url=stack.redis_url, stream_shards=SHARDS, data_dir=directory / "data")
        flow = build_flow(*configs_from(settings))
        ensure_recovery_dir(recovery_dir(settings))
        recovery = RecoveryConfig(str(recovery_dir(settings)))

        def stop_when_drained() -> None:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                if all(client.mget([keys.contact_profile(s) for s in work.sentinels])):
                    break
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=stop_when_drained, daemon=True).start()
        profiler = cProfile.Profile()
        started = time.monotonic()
        # The SIGINT lands in whichever of our functions runs; Bytewax may wrap it in its own error.
        with contextlib.suppress(KeyboardInterrupt, BytewaxRuntimeError):
            profiler.runcall(run_main, flow, epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
                             recovery_config=recovery)
        seconds = time.monotonic() - started
        return pstats.Stats(profiler), seconds


def _by_function(stats: pstats.Stats) -> dict[str, tuple[float, float, int]]:
    """Our functions: name → (inclusive s, self s, calls)."""
    out: dict[str, tuple[float, float, int]] = {}
    for (path, line, name), (_cc, calls, self_s, incl_s, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if any(part in path for part in OURS):
            short = f"{path.split('/')[-2]}/{path.split('/')[-1]}:{line} {name}"
            out[short] = (incl_s, self_s, calls)
    return out


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
    none, ten = runs["none"], runs["ten"]
    zero = (0.0, 0.0, 0)
    grew = sorted(((name, ten[name][0] - none.get(name, zero)[0], ten[name], none.get(name, zero)[2])
                   for name in ten), key=lambda row: -row[1])[:top]
    own = sorted(ten.items(), key=lambda kv: -kv[1][1])[:top]
    return {"events": work.events, "wall_s": wall, "grew_inclusive_s": grew, "ten_self_s": own}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workflow_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    result = profile(args.visitors, 49, args.top)
    print(f"{result['events']:,} events; wall s under cProfile: " +
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

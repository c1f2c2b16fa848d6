"""`python -m benchmarks.recommendations [--short|--full]` — how good, how fresh and how costly recommendations are.

Three measures, each checked before its figures count (the checks are in
each module's docstring):

1. quality on a seeded synthetic shop with planted structure
   (`recs_quality`, `recs_world`): HR@10 and MRR@10 on held-out next views
   for Attimo's personal strip, popularity and a batch item-KNN; targets
   HR@10 ≥ 2× popularity's and within 10 % of item-KNN's (judged on Attimo
   trained on the same sessions as the baselines; the streaming figure is
   what production does);
2. freshness through the real dataflow under background load
   (`recs_freshness`): a new co-purchase → the first product's document
   lists the second, p50 / p99; target p99 < 5 s;
3. dataflow throughput with recommendations on against off on one
   pre-loaded backlog (`recs_throughput`).

Results go to `benchmarks/results/recommendations-<date>.json` and the
`## recommendations run` section of `RESULTS.md` (the other sections stay).
The stack's processes run a copy of the code taken at the start.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks import recs_freshness, recs_quality, recs_report, recs_throughput, report
from benchmarks.progress import note
from benchmarks.recs_world import WorldSize
from benchmarks.stack import CODE, REPO

NAME: Final = recs_report.NAME
PHASES: Final = ("quality", "freshness", "throughput")
TARGET_VS_POPULARITY: Final = 2.0
TARGET_VS_KNN: Final = 0.9
TARGET_FRESH_MS: Final = 5_000.0


@dataclass(frozen=True)
class Mode:
    """How big each measure is."""

    name: str
    world: WorldSize
    # Background events/s, seconds of probing, probes/s.
    freshness: tuple[float, float, float]
    # Backlog visitors, drains of each configuration.
    throughput: tuple[int, int]


MODES: Final = {
    "tiny": Mode("tiny", WorldSize(products=120, categories=6, sessions=1_500), (200, 4, 3), (300, 1)),
    "short": Mode("short", WorldSize(products=300, categories=10, sessions=6_000), (1_000, 20, 5), (2_000, 2)),
    "full": Mode("full", WorldSize(products=2_000, categories=40, sessions=40_000), (2_000, 60, 5), (10_000, 3)),
}


def measure(mode: Mode, workdir: Path, only: set[str]) -> dict[str, Any]:
    """Run the chosen measures; their figures and one overall check."""
    figures: dict[str, Any] = {"mode": mode.name}
    if not only or "quality" in only:
        note(f"recommendations quality: {mode.world.sessions:,} sessions over {mode.world.products:,} products …")
        figures["quality"] = recs_quality.measure(mode.world, seed=1)
    if not only or "freshness" in only:
        rate, seconds, probes = mode.freshness
        note(f"recommendations freshness: {rate:,.0f} events/s background, {probes:g} probes/s for {seconds:g} s …")
        figures["freshness"] = recs_freshness.measure(workdir / "freshness", rate, seconds, probes)
    if not only or "throughput" in only:
        visitors, repeats = mode.throughput
        figures["throughput"] = recs_throughput.measure(workdir, visitors, repeats, seed=5)
    checks = [figures[p]["check"]["correct"] for p in PHASES if p in figures]
    figures["correctness"] = {"correct": bool(checks) and all(checks)}
    return figures


def targets(figures: dict[str, Any]) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, measured, goal, met) for each target the run measured."""
    rows: list[tuple[str, float | None, str, bool | None]] = []
    quality = figures.get("quality")
    if quality:
        ratios = quality["ratios"]["attimo_trained"]
        rows.append(("HR@10, Attimo / popularity", ratios["hr_vs_popularity"], f"≥ {TARGET_VS_POPULARITY:g}×",
                     ratios["hr_vs_popularity"] >= TARGET_VS_POPULARITY))
        rows.append(("HR@10, Attimo / batch item-KNN", ratios["hr_vs_item_knn"], f"≥ {TARGET_VS_KNN:g}×",
                     ratios["hr_vs_item_knn"] >= TARGET_VS_KNN))
    fresh = figures.get("freshness")
    if fresh:
        p99 = fresh["visible_ms"].get("p99")
        rows.append(("new co-purchase → document, p99 ms", p99, f"< {TARGET_FRESH_MS:,.0f}",
                     None if p99 is None else p99 < TARGET_FRESH_MS and not fresh["not_visible"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recommendations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help="CI-sized, about 3 minutes (default)")
    size.add_argument("--full", action="store_true", help="the larger shop and load, about 15 minutes")
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test's: checks, small figures
    parser.add_argument("--only", action="append", choices=PHASES, default=[], help="run only this measure")
    parser.add_argument("--out", type=Path, default=report.HERE, help="where results/ and RESULTS.md go")
    args = parser.parse_args(argv)
    mode = MODES["full" if args.full else "tiny" if args.tiny else "short"]
    command = f"python -m benchmarks.recommendations --{mode.name}" + "".join(f" --only {o}" for o in args.only)
    from benchmarks.__main__ import snapshot_code  # the suite's: copies state/, dataflows/, api/

    workdir = Path(tempfile.mkdtemp(prefix="attimo-recs-"))
    started = time.monotonic()
    try:
        code = snapshot_code(REPO, workdir / "code")
        CODE["root"] = workdir / "code"
        figures = measure(mode, workdir, set(args.only))
    finally:
        CODE["root"] = REPO
        shutil.rmtree(workdir, ignore_errors=True)
    figures["code"] = code
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["targets"] = [{"what": w, "measured": v, "goal": g, "met": m} for w, v, g, m in targets(figures)]
    path = report.write(figures, NAME, command, args.out)
    correct = report.all_correct(figures)
    note(f"wrote {path}; correct: {str(correct).lower()}")
    for what, value, goal, met in targets(figures):
        note(f"  {what}: {value} (goal {goal}; {'met' if met else 'missed' if met is not None else 'not measured'})")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks [--short|--full|--tiny] [--only NAME …]` — what `attimo bench` runs.

Short mode (< 2 minutes) is what CI runs: it checks correctness and writes the
report but asserts nothing about speed. Full mode (≈ 20 minutes) is for
people. Results go to `benchmarks/results/<mode>-<date>.json` and
`benchmarks/RESULTS.md` (or under `--out`).

`--soak [--soak-minutes 10] [--soak-capacity EV/S]` is neither: the whole
stack at half its capacity for minutes, watched for memory and store growth
(`benchmarks/soak.py`); it replaces only the soak section of RESULTS.md and
exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import report, soak
from benchmarks.progress import note, table
from benchmarks.stack import CODE, REPO
from benchmarks.suite import FULL, PHASES, SHORT, TINY, Suite

PACKAGES = ("state", "dataflows", "api")


def snapshot_code(source: Path, target: Path) -> dict[str, str]:
    """Copy the code under test, so every process of the run runs one version.

    Others may commit while a 15-minute run goes on; processes started late
    in the run would otherwise measure different code than early ones.
    """
    for package in PACKAGES:
        shutil.copytree(
            source / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "node_modules")
        )

    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    dirty = git("status", "--porcelain", "--", *PACKAGES)
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "uncommitted_changes": str(len(dirty.splitlines())) if dirty else "0",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="attimo bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help="a quick run, about 2 minutes (default)")
    size.add_argument("--full", action="store_true", help="the full suite, about 20 minutes")
    size.add_argument("--tiny", action="store_true", help="every phase at its smallest: what the tests run")
    size.add_argument(
        "--soak", action="store_true", help="the soak: half of capacity for --soak-minutes (not in CI)"
    )
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument(
        "--soak-capacity",
        type=float,
        default=None,
        help="events/s the stack sustains, instead of measuring it before the soak",
    )
    parser.add_argument(
        "--only", action="append", choices=PHASES, default=[], help="run only this phase (repeatable)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=report.HERE,
        help="where results/ and RESULTS.md go (default: the benchmarks package)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the private stacks keep their files (default: a temporary directory)",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="run the stack's processes from this source tree (default: this repository)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, profiles)")
    args = parser.parse_args(argv)
    if args.soak and args.only:
        parser.error("--only chooses phases of --short/--full; the soak is one phase of its own")
    mode = FULL if args.full else TINY if args.tiny else SHORT
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="attimo-bench-"))
    source = args.repo.resolve() if args.repo is not None else REPO
    code = snapshot_code(source, workdir / "code")
    CODE["root"] = workdir / "code"
    note(f"attimo bench: {report.SOAK if args.soak else mode.name} mode, work directory {workdir}")
    try:
        if args.soak:
            options = soak.SoakOptions(minutes=args.soak_minutes, capacity=args.soak_capacity)
            figures = soak.run(options, workdir)
        else:
            figures = Suite(mode, set(args.only), workdir).run()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    name = mode.name if not args.only else f"{mode.name}-{'-'.join(sorted(args.only))}"
    name = report.SOAK if args.soak else name
    figures["code"] = code
    path = report.write(figures, name, report.command_line(), args.out)
    correct = report.all_correct(figures)
    note(f"wrote {path} and {args.out / 'RESULTS.md'}; correct: {str(correct).lower()}")
    if args.soak:
        checks = figures.get("summary", {}).get("checks", {})
        table("soak checks", ["check", "verdict"], [(key, check["verdict"]) for key, check in checks.items()])
        return 0 if correct and checks and figures["summary"]["passed"] else 1
    measured = [t for t in report.judge(figures) if t["measured"] is not None]
    table(f"attimo bench {name}: targets", ["target", "goal", "measured", "verdict"],
          [(t["what"], f"{t['target']:,} {t['unit']}", f"{t['measured']:,.1f} {t['unit']}", t["verdict"])
           for t in measured])
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())

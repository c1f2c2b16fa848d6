"""The command line shared by the benchmarks that compare one load with and without a feature.

`python -m benchmarks.<name> [--short|--full] [--out DIR] [--workdir DIR]`
(and a hidden `--tiny`, the suite's smoke run): pick the size, measure in a
temporary directory, write the JSON and the benchmark's own RESULTS.md
section (`report.write`), say where and whether every check held; exit 1
when one did not.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from benchmarks import report
from benchmarks.progress import note


class Sized(Protocol):
    """A benchmark's size: `tiny`, `short` or `full`."""

    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=Sized)


def run_sized(name: str, doc: str | None, modes: Mapping[str, M], helps: tuple[str, str],
              measure: Callable[[M, Path], dict[str, Any]], summary: Callable[[dict[str, Any]], str],
              argv: list[str] | None = None) -> int:
    """Parse `argv`, run `measure(mode, workdir)`, write its results; the exit code.

    `helps` describe `--short` (the default) and `--full`; `summary` turns the
    figures into the closing line's headline numbers.
    """
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_true", help=f"{helps[0]} (default)")
    size.add_argument("--full", action="store_true", help=helps[1])
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the suite's: checks, no figures
    parser.add_argument("--out", type=Path, default=report.HERE, help="where results/ and RESULTS.md go")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stacks run (default: a temp dir)")
    args = parser.parse_args(argv)
    mode = modes["full" if args.full else "tiny" if args.tiny else "short"]
    with tempfile.TemporaryDirectory(prefix=f"attimo-{name}-") as tmp:
        figures = measure(mode, args.workdir or Path(tmp))
    path = report.write(figures, name, f"python -m benchmarks.{name} --{mode.name}", args.out)
    correct = report.all_correct(figures)
    note(f"wrote {path}; correct: {str(correct).lower()}; {summary(figures)}")
    return 0 if correct else 1

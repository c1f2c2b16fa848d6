"""What a replay tells its user: each refused event, and a summary at the end.

Refusals are printed as they happen (the first `shown`, then a count, so a
file of a million bad lines does not flood the terminal) and every one is
written to the `--rejects` file as it happens, one JSON object a line, so
memory stays flat however many there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import msgspec
from rich.console import Console
from rich.table import Table

from api.replay.checks import Rejected
from api.replay.errors import ReplayError

SHOWN: Final = 20


@dataclass(slots=True)
class Counts:
    """How many events the replay read, sent, saw accepted and saw refused (here or by the API)."""

    read: int = 0
    sent: int = 0
    accepted: int = 0
    refused_here: int = 0
    refused_by_api: int = 0
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return self.refused_here + self.refused_by_api


def describe(rejected: Rejected) -> str:
    """One refusal in a line: where, which field, why, and who said so."""
    where = f"line {rejected.line}" if rejected.line is not None else f"event {rejected.event}"
    field = f" field `{rejected.field}`:" if rejected.field else ""
    who = "refused by the API" if rejected.by == "api" else "not sent"
    return f"{where}:{field} {rejected.reason} ({who})"


class RejectReport:
    """Says each refusal: on the console (the first `shown`), in the rejects file (all of them)."""

    def __init__(self, console: Console, counts: Counts, rejects: Path | None, shown: int = SHOWN) -> None:
        self._console = console
        self._counts = counts
        self._shown = shown
        try:
            self._file: IO[bytes] | None = open(rejects, "wb") if rejects is not None else None  # noqa: SIM115
        except OSError as exc:
            raise ReplayError(f"cannot write the rejects file {rejects}: {exc.strerror or exc}") from exc
        self._encoder = msgspec.json.Encoder()

    def add(self, rejected: Rejected) -> None:
        """Count one refusal, print it if it is among the first, append it to the rejects file."""
        if rejected.by == "api":
            self._counts.refused_by_api += 1
        else:
            self._counts.refused_here += 1
        if self._counts.rejected <= self._shown:
            self._console.print(describe(rejected), markup=False, highlight=False, soft_wrap=True)
        if self._file is not None:
            self._file.write(self._encoder.encode(rejected) + b"\n")

    def close(self) -> None:
        """Say how many refusals were not printed, and close the rejects file."""
        hidden = self._counts.rejected - self._shown
        if hidden > 0:
            where = "all are in the --rejects file" if self._file is not None else "use --rejects FILE for all"
            self._console.print(f"… and {hidden:,} more rejected ({where})", markup=False, highlight=False)
        if self._file is not None:
            self._file.close()


def summary(counts: Counts) -> Table:
    """The end-of-replay table: read, sent, accepted, rejected, and the rate achieved."""
    table = Table(title="attimo replay", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rate = counts.sent / counts.seconds if counts.seconds > 0 else 0.0
    for what, value in (("read", f"{counts.read:,}"), ("sent", f"{counts.sent:,}"),
                        ("accepted", f"{counts.accepted:,}"),
                        ("rejected", f"{counts.rejected:,} ({counts.refused_here:,} here, "
                                     f"{counts.refused_by_api:,} by the API)"),
                        ("seconds", f"{counts.seconds:.2f}"), ("events/s", f"{rate:,.1f}")):
        table.add_row(what, value)
    return table

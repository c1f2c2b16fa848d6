"""`attimo replay FILE [--rate N] …`: the options, the loop over the file, the progress bar, the exit code.

Exit codes: 0 every event was accepted; 1 some were rejected (each one
said, with its line and field); 2 the replay could not finish — the API did
not answer, refused the write key, or the file could not be read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from api.replay.checks import Checker, Rejected, field_of
from api.replay.errors import ReplayError
from api.replay.pacing import Pace
from api.replay.report import Counts, RejectReport, summary
from api.replay.sender import IngestClient, body_bytes
from api.replay.source import EventFile, Item
from state.settings import Settings
from state.validation import limits_from

EXIT_ACCEPTED: Final = 0
EXIT_REJECTED: Final = 1
EXIT_FAILED: Final = 2
DESCRIPTION: Final = """Send a file of events through Attimo's HTTP ingest (POST /v1/batch).

Each event is checked first as the ingest checks it; a bad one is reported
with its line, field and reason and not sent. Exit code 0 when every event
was accepted, 1 when some were rejected, 2 when the API could not be
reached (or refused the write key, or the file could not be read)."""
_REDRAW_EVERY: Final = 500  # items between progress updates when nothing is sent (all refused here)


def _rejected(item: Item, reason: str, by: str) -> Rejected:
    where = {"line": item.number} if item.unit == "line" else {"event": item.number}
    text = item.payload.decode(errors="replace") or None
    return Rejected(reason=reason, by="api" if by == "api" else "replay", field=field_of(reason), text=text,
                    **where)


class _Replay:
    """One pass over the file: check, batch, pace, send, report."""

    def __init__(self, events: EventFile, client: IngestClient, checker: Checker, pace: Pace,
                 report: RejectReport, counts: Counts, batch_size: int, max_body_bytes: int,
                 progress: Progress) -> None:
        self.events, self.client, self.checker, self.pace = events, client, checker, pace
        self.report, self.counts, self.progress = report, counts, progress
        self.batch_size = pace.batch_size(batch_size)
        self.max_body_bytes = max_body_bytes
        self.started = time.monotonic()
        self.task: TaskID = progress.add_task("replay", total=max(1, events.size), note="")

    def run(self) -> None:
        pending: list[Item] = []
        pending_bytes = 0
        for item in self.events:
            self.counts.read += 1
            reason = item.error or self.checker.problem(item.payload)
            if reason is not None:
                self.report.add(_rejected(item, reason, "replay"))
                if self.counts.read % _REDRAW_EVERY == 0:
                    self.redraw()
                continue
            size = len(item.payload)
            if pending and body_bytes(pending_bytes + size, len(pending) + 1) > self.max_body_bytes:
                self.send(pending)
                pending, pending_bytes = [], 0
            pending.append(item)
            pending_bytes += size
            if len(pending) >= self.batch_size:
                self.send(pending)
                pending, pending_bytes = [], 0
        if pending:
            self.send(pending)
        self.redraw()

    def send(self, batch: list[Item]) -> None:
        self.pace.wait_for(len(batch))
        answer = self.client.send([item.payload for item in batch])
        self.counts.sent += len(batch)
        self.counts.accepted += len(batch) - len(answer.refused)
        for index, reason in sorted(answer.refused.items()):
            self.report.add(_rejected(batch[index], reason, "api"))
        self.redraw()

    def redraw(self) -> None:
        self.counts.seconds = time.monotonic() - self.started
        rate = self.counts.sent / self.counts.seconds if self.counts.seconds > 0 else 0.0
        note = (f"{self.counts.read:,} read, {self.counts.sent:,} sent, {self.counts.rejected:,} rejected, "
                f"{rate:,.0f} ev/s")
        self.progress.update(self.task, completed=self.events.position(), note=note)

    def waiting(self, why: str) -> None:
        """Shown while the API pushes back or does not answer, so a stalled bar says why."""
        self.progress.update(self.task, note=why)


def parser(settings: Settings) -> argparse.ArgumentParser:
    """The options; defaults come from the settings (and the dev credentials `attimo run` keeps)."""
    limits = limits_from(settings)
    p = argparse.ArgumentParser(prog="attimo replay", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, help="NDJSON, a JSON array or a {\"batch\": [...]} object; .gz is unpacked")
    p.add_argument("--rate", type=float, default=None, help="at most this many events a second (default: full "
                                                             "speed)")
    p.add_argument("--api", default=settings.api_url, help="the API's URL (default: %(default)s)")
    p.add_argument("--write-key", default=settings.write_key, help="default: ATTIMO_WRITE_KEY or the dev key")
    p.add_argument("--batch-size", type=int, default=limits.max_events_per_batch,
                   help="events per request, at most the API's limit (default: %(default)s)")
    p.add_argument("--rejects", type=Path, default=None,
                   help="write every rejected event with its line and reason here, as NDJSON")
    p.add_argument("--timeout", type=float, default=15.0,
                   help="seconds the API may stay unreachable before the replay gives up (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run `attimo replay`; returns the exit code."""
    settings = Settings()
    limits = limits_from(settings)
    options = parser(settings).parse_args(argv)
    if not 1 <= options.batch_size <= limits.max_events_per_batch:
        parser(settings).error(f"--batch-size must be between 1 and {limits.max_events_per_batch}")
    if options.rate is not None and options.rate <= 0:
        parser(settings).error("--rate must be more than 0")
    out, err = Console(), Console(stderr=True)
    counts = Counts()
    code = EXIT_ACCEPTED
    try:
        with EventFile(options.file) as events, Progress(
            TextColumn("[bold]replay"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(), console=err,
        ) as progress:
            report = RejectReport(err, counts, options.rejects)
            client = IngestClient(options.api, options.write_key, unreachable_after_s=options.timeout)
            replay = _Replay(events, client, Checker(limits), Pace(options.rate), report, counts,
                             options.batch_size, limits.max_batch_bytes, progress)
            client.on_wait = replay.waiting
            try:
                replay.run()
            finally:
                replay.redraw()
                client.close()
                report.close()
    except ReplayError as exc:
        err.print(f"attimo replay: {exc}", markup=False, highlight=False)
        code = EXIT_FAILED
    except KeyboardInterrupt:
        err.print("attimo replay: interrupted", markup=False, highlight=False)
        code = EXIT_FAILED
    out.print(summary(counts))
    if code == EXIT_ACCEPTED and counts.rejected:
        code = EXIT_REJECTED
    return code


if __name__ == "__main__":
    sys.exit(main())

"""`attimo replay FILE`, run as a user runs it, against `attimo run` and its real HTTP ingest.

The replay's process gets only what a user would have exported beside
`attimo run` (ports, data directory, write key), so it finds the API and
the key itself. The stack's API is started with a smaller event limit than
the replay knows about (ATTIMO_MAX_EVENT_BYTES is not passed on), so one
event passes the replay's own check and is refused by the API: the replay
must report that refusal too.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.processes import attimo_environment
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import REPO, free_port, running_redis, wait_for

pytestmark = pytest.mark.e2e

ATTIMO = Path(sys.executable).with_name("attimo")
API_MAX_EVENT_BYTES = 2048  # the API's limit; the replay checks against the default (32 KiB)
PROFILE_TIMEOUT_S = 20


@dataclass
class Run:
    """What a user sees of one `attimo replay`: exit code, the summary (stdout), the reports (stderr)."""

    code: int
    out: str
    err: str
    seconds: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`attimo run` against a private Redis, its API refusing events over API_MAX_EVENT_BYTES."""
    directory = tmp_path_factory.mktemp("replay")
    with running_redis(directory) as redis, attimo_run(
            directory / "run", redis, MAX_EVENT_BYTES=str(API_MAX_EVENT_BYTES)) as running:
        yield running


def replay(stack: Stack, *args: str) -> Run:
    """`attimo replay args…` in a second terminal with the stack's variables exported (bar its event limit)."""
    assert ATTIMO.exists(), f"{ATTIMO} is missing: the package is not installed in this venv"
    settings = {k: v for k, v in stack.settings.items() if k != "ATTIMO_MAX_EVENT_BYTES"}
    started = time.monotonic()
    done = subprocess.run([str(ATTIMO), "replay", *args], env=attimo_environment(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def profile(stack: Stack, contact: str) -> dict[str, Any] | None:
    """The contact's profile from the admin API, or None while it has none."""
    status, body = stack.get(f"/v1/contacts/{contact}", admin=True)
    return json.loads(body) if status == 200 else None


def events_of(stack: Stack, contact: str, count: int) -> dict[str, Any]:
    """The contact's profile once it counts `count` events."""
    found = wait_for(lambda: (p := profile(stack, contact)) and p["counters"].get("events") == count and p,
                     PROFILE_TIMEOUT_S, f"{count} events in the profile of {contact}")
    assert isinstance(found, dict)
    return found


def track(user: str, name: str = "Product Viewed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "userId": user, "properties": {"product_id": "p1"}, **fields}


def summary_row(run: Run, what: str) -> str:
    """The value of one row of the summary table (`read`, `sent`, `accepted`, `rejected`, `events/s`)."""
    for line in run.out.splitlines():
        cells = [c.strip() for c in line.strip("│|").split("│")]
        if len(cells) == 2 and cells[0] == what:
            return cells[1]
    raise AssertionError(f"no {what!r} row in the summary:\n{run.out}")


class TestGoodAndBadLines:
    """A file with good and bad lines: the good reach profiles, each bad one is named with its line and field."""

    def test_bad_lines_are_reported_and_the_good_ones_ingested(self, stack: Stack, tmp_path: Path) -> None:
        """Exit 1; stderr and the --rejects file name every bad line, its field and why; the good are profiles."""
        lines = [
            json.dumps(track("replay-ann")),
            '{"type": "track", "event": "Product Viewed", "userId": ',           # 2: not JSON
            json.dumps({"type": "identify", "userId": 12345}),                  # 3: userId is a number
            json.dumps(track("u" * 201)),                                       # 4: userId too long
            "",
            json.dumps({"type": "track", "userId": "replay-bob"}),              # 6: no `event`
            json.dumps(track("replay-bob", name="Product Added")),
            json.dumps(track("replay-big", padding="x" * API_MAX_EVENT_BYTES)),  # 8: over the API's limit
            json.dumps({"type": "identify", "userId": "replay-ann", "traits": {"email": "ann@example.com"}}),
        ]
        source = tmp_path / "events.ndjson"
        source.write_text("\n".join(lines) + "\n")
        rejects = tmp_path / "rejects.ndjson"

        run = replay(stack, str(source), "--rejects", str(rejects))

        assert run.code == 1, run
        assert "line 2: not valid JSON" in run.err
        assert "line 3: field `userId`: Expected `str | null`, got `int`" in run.err
        assert "line 4: field `userId`: Expected `str` of length <= 200" in run.err
        assert "line 6: field `event`: Object missing required field `event`" in run.err
        assert f"line 8: event is {len(lines[7])} bytes; at most {API_MAX_EVENT_BYTES} allowed (refused by the API)" \
            in run.err
        reported = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [(r["line"], r.get("field"), r["by"]) for r in reported] == [
            (2, None, "replay"), (3, "userId", "replay"), (4, "userId", "replay"), (6, "event", "replay"),
            (8, None, "api")]
        assert reported[1]["text"] == lines[2]
        assert (summary_row(run, "read"), summary_row(run, "sent"), summary_row(run, "accepted")) == ("8", "4", "3")
        assert summary_row(run, "rejected").startswith("5 (4 here, 1 by the API)")
        assert events_of(stack, "replay-ann", 2)["user_id"] == "replay-ann"
        assert events_of(stack, "replay-bob", 1)["windows"]["1h"]["event"] == {"Product Added": 1}
        assert profile(stack, "replay-big") is None


class TestExportShapes:
    """Segment exports: a JSON array (gzip-compressed) and a batch body are read like NDJSON."""

    def test_gzip_json_array_export_keeps_its_own_timestamps(self, stack: Stack, tmp_path: Path) -> None:
        """Exit 0; the events land at their exported `timestamp`, not re-timed by the export's old `sentAt`."""
        when = datetime.now(UTC) - timedelta(minutes=30)
        stamp = when.isoformat().replace("+00:00", "Z")
        sent = (when + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
        export = [{**track("replay-carl"), "messageId": f"m{i}", "timestamp": stamp, "originalTimestamp": stamp,
                   "sentAt": sent, "receivedAt": sent, "context": {"library": {"name": "analytics.js"}}}
                  for i in range(3)]
        source = tmp_path / "export.json.gz"
        source.write_bytes(gzip.compress(json.dumps(export, indent=2).encode()))

        run = replay(stack, str(source))

        assert run.code == 0, run
        assert summary_row(run, "accepted") == "3"
        seen = datetime.fromisoformat(events_of(stack, "replay-carl", 3)["first_seen"])
        assert abs(seen - when) < timedelta(seconds=5)

    def test_batch_body_file(self, stack: Stack, tmp_path: Path) -> None:
        """A `{"batch": [...]}` file, as sent to /v1/batch, is replayed event by event."""
        source = tmp_path / "batch.json"
        source.write_text(json.dumps({"batch": [track("replay-dora"), track("replay-dora", name="Cart Viewed")],
                                      "sentAt": None}))
        run = replay(stack, str(source))
        assert run.code == 0, run
        assert events_of(stack, "replay-dora", 2)["user_id"] == "replay-dora"

    def test_bad_event_in_an_array_is_named_by_its_position(self, stack: Stack, tmp_path: Path) -> None:
        """An array has no lines: the refused event is named by its position, with its field."""
        source = tmp_path / "export.json"
        source.write_text(json.dumps([track("replay-emma"), {"type": "track", "event": "X", "userId": ["a"]}]))
        run = replay(stack, str(source))
        assert run.code == 1, run
        assert "event 2: field `userId`" in run.err


class TestRate:
    """`--rate N` holds the replay to at most N events a second."""

    def test_rate_bounds_events_per_second(self, stack: Stack, tmp_path: Path) -> None:
        """12 events at --rate 20 take at least 0.6 s of sending; the summary's events/s is at most 20 (+10 %)."""
        source = tmp_path / "paced.ndjson"
        source.write_text("".join(json.dumps(track(f"replay-rate-{i}")) + "\n" for i in range(12)))
        run = replay(stack, str(source), "--rate", "20")
        assert run.code == 0, run
        assert float(summary_row(run, "seconds")) >= 0.55
        assert 0 < float(summary_row(run, "events/s").replace(",", "")) <= 22


class TestFailures:
    """Exit 2 when nothing can be ingested: no API, a refused key, no file."""

    def test_unreachable_api_exits_2(self, stack: Stack, tmp_path: Path) -> None:
        """Nothing listens at --api: the replay gives up after --timeout and exits 2, saying so."""
        source = tmp_path / "one.ndjson"
        source.write_text(json.dumps(track("replay-nobody")) + "\n")
        run = replay(stack, str(source), "--api", f"http://127.0.0.1:{free_port()}", "--timeout", "1")
        assert run.code == 2, run
        assert "no answer from http://127.0.0.1:" in run.err
        assert summary_row(run, "sent") == "0"

    def test_refused_write_key_exits_2(self, stack: Stack, tmp_path: Path) -> None:
        """A write key the API does not know ends the replay at the first batch, exit 2."""
        source = tmp_path / "one.ndjson"
        source.write_text(json.dumps(track("replay-nobody")) + "\n")
        run = replay(stack, str(source), "--write-key", "wk_nobody_knows")
        assert run.code == 2, run
        assert "the API refused the write key (401)" in run.err

    def test_missing_file_exits_2(self, stack: Stack, tmp_path: Path) -> None:
        """A file that does not exist is said, exit 2."""
        run = replay(stack, str(tmp_path / "nowhere.ndjson"))
        assert run.code == 2, run
        assert "cannot open" in run.err

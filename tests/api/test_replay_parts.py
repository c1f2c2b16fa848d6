"""The parts of `attimo replay`: reading files in flat memory, naming fields, pacing, answering 429."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from api.replay.checks import field_of
from api.replay.pacing import Pace
from api.replay.sender import IngestClient
from api.replay.source import MAX_LINE_BYTES, EventFile

EVENT = {"type": "track", "event": "Product Viewed", "userId": "u1", "properties": {"product_id": "p1"}}


class _Ingest(http.server.BaseHTTPRequestHandler):
    """A stand-in for /v1/batch that answers the statuses a test queues, and keeps the bodies it got."""

    answers: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        status, headers, body = self.answers.pop(0) if self.answers else (200, {}, b'{"success": true}')
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def ingest() -> Iterator[tuple[str, type[_Ingest]]]:
    """A real HTTP server on a free port, in a thread, answering as queued in `_Ingest.answers`."""
    handler = type("Ingest", (_Ingest,), {"answers": [], "bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


class TestSender:
    """What the replay does with each answer of /v1/batch."""

    def test_429_is_waited_out_for_retry_after_and_the_same_batch_sent_again(
            self, ingest: tuple[str, type[_Ingest]]) -> None:
        """Overloaded once with Retry-After: 1 → one wait of a second, then the same body is taken."""
        url, handler = ingest
        handler.answers.append((429, {"Retry-After": "1"}, b'{"error": "overloaded", "success": false}'))
        waits: list[str] = []
        client = IngestClient(url, "wk", on_wait=waits.append)
        started = time.monotonic()
        answer = client.send([json.dumps(EVENT).encode()])
        assert time.monotonic() - started >= 1.0
        assert answer.refused == {}
        assert waits == ["API overloaded (429): waiting 1 s"]
        assert len(handler.bodies) == 2 and handler.bodies[0] == handler.bodies[1]

    def test_per_event_refusals_map_to_positions(self, ingest: tuple[str, type[_Ingest]]) -> None:
        """A 400 listing refused indexes refuses those events only."""
        url, handler = ingest
        body = json.dumps({"accepted": 1, "rejected": [{"index": 1, "error": "`userId` is bad"}],
                           "success": False}).encode()
        handler.answers.append((400, {}, body))
        answer = IngestClient(url, "wk").send([b"{}", b"{}"])
        assert answer.refused == {1: "`userId` is bad"}


class TestSource:
    """Files of events are read one event at a time, whatever their shape."""

    def test_a_big_array_export_is_read_in_flat_memory(self, tmp_path: Path) -> None:
        """40,000 events in one gzip JSON array (≈ 4 MB of JSON) read with under 1 MB held at any time."""
        source = tmp_path / "big.json.gz"
        with gzip.open(source, "wt") as out:
            out.write("[" + ",".join(json.dumps({**EVENT, "messageId": f"m{i}"}) for i in range(40_000)) + "]")
        tracemalloc.start()
        try:
            with EventFile(source) as events:
                count = sum(1 for item in events if item.error is None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == 40_000
        assert peak < 1_000_000

    def test_an_enormous_line_is_refused_without_being_held(self, tmp_path: Path) -> None:
        """A line over the cap is reported by number; the lines after it are read as usual."""
        source = tmp_path / "long.ndjson"
        source.write_text(json.dumps(EVENT) + "\n" + "x" * (MAX_LINE_BYTES * 3) + "\n" + json.dumps(EVENT) + "\n")
        with EventFile(source) as events:
            items = [(item.number, item.error) for item in events]
        assert items == [(1, None), (2, f"line is over {MAX_LINE_BYTES} bytes"), (3, None)]

    def test_a_one_line_batch_body_is_not_taken_for_ndjson(self, tmp_path: Path) -> None:
        """`{"sentAt": …, "batch": [...]}` on one line is a batch body: its events are read."""
        source = tmp_path / "batch.json"
        source.write_text(json.dumps({"sentAt": None, "batch": [EVENT, EVENT]}) + "\n")
        with EventFile(source) as events:
            assert events.shape == "batch"
            assert [item.number for item in events] == [1, 2]


class TestFieldOf:
    """The field a refusal names."""

    @pytest.mark.parametrize(("reason", "field"), [
        ("Expected `str | null`, got `int` - at `$.userId`", "userId"),
        ("Expected `str` of length <= 200 - at `$.properties.products[0].id`", "properties.products[0].id"),
        ("Object missing required field `event`", "event"),
        ("messageId m1: `properties.price` must be a number, got str", "properties.price"),
        ("not valid JSON: Input data was truncated", None),
        ("Expected `object`, got `array`", None),
    ])
    def test_field_named_by_the_reason(self, reason: str, field: str | None) -> None:
        """msgspec's path, a missing field, or the validator's own backticked name."""
        assert field_of(reason) == field


class TestPace:
    """A rate holds sending to `rate × elapsed` events."""

    def test_batches_wait_until_their_events_are_earned(self) -> None:
        """At 10 ev/s, batches of 1: the 5th event goes at 0.5 s, never before."""
        now = [0.0]
        pace = Pace(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
        assert pace.batch_size(100) == 1
        for _ in range(5):
            pace.wait_for(1)
        assert now[0] == pytest.approx(0.5)

    def test_a_long_stall_leaves_at_most_one_second_of_credit(self) -> None:
        """After 10 s of waiting on the API, the next 20 events at 10 ev/s take 1 s, not 0 s."""
        now = [0.0]
        pace = Pace(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
        pace.wait_for(1)
        now[0] += 10.0
        start = now[0]
        for _ in range(20):
            pace.wait_for(1)
        assert now[0] - start == pytest.approx(1.0, abs=0.11)

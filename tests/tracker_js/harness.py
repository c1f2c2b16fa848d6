"""Test doubles for the tracker's browser tests: a fake gateway speaking the
v1 stream protocol and a page server for HTML fixtures, both on 127.0.0.1
free ports, so the tests exercise the built `dist/attimo.js` exactly as a
shop would load it, with no network access."""

from __future__ import annotations

import asyncio
import json
import string
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.helpers import free_port, wait_for

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
TRACKER_DIR = REPO / "tracker_js"
DIST = TRACKER_DIR / "dist" / "attimo.js"
WIDGETS = TRACKER_DIR / "dist" / "attimo-widgets.js"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WRITE_KEY = "wk_test"
WAIT_S = 3.0


def wait_until(pred: Callable[[], T], what: str = "condition", timeout: float = WAIT_S) -> T:
    """Poll `pred` until it returns something truthy; every wait in these tests is bounded."""
    return wait_for(pred, timeout, what)


class FakeGateway:
    """A websocket server speaking the v1 stream protocol, with knobs for failures.

    It records every frame, acks each one (unless told to drop the connection
    first), can reject events by name, and can push decision frames.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.frames: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.reject_events: set[str] = set()
        self.drop_before_ack = 0
        self._clients: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- what the tests read -------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for f in self.frames for e in f["batch"]]

    def names(self) -> list[str]:
        return [e.get("event") or e["type"] for e in self.events()]

    def wait_for_events(self, n: int) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]]:
            events = self.events()
            return events if len(events) >= n else []

        return wait_until(enough, what=f"{n} events")

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FakeGateway:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            async with serve(self._handle, "127.0.0.1", self.port):
                ready.set()
                await self._stop

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(WAIT_S), "fake gateway did not start"
        return self

    def stop(self) -> None:
        if self._loop and self._stop and not self._stop.done():
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        if self._thread:
            self._thread.join(WAIT_S)

    def push(self, message: dict[str, Any]) -> None:
        """Send a server frame (e.g. a decision) to every connected browser."""
        assert self._loop is not None
        wait_until(lambda: self._clients, what="a connected client")

        async def send_all() -> None:
            for ws in list(self._clients):
                await ws.send(json.dumps(message))

        asyncio.run_coroutine_threadsafe(send_all(), self._loop).result(WAIT_S)

    def drop_all(self) -> None:
        """Close every connection from the server side, as a restarting gateway would."""
        assert self._loop is not None

        async def close_all() -> None:
            for ws in list(self._clients):
                await ws.close()

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(WAIT_S)

    async def _handle(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        self._clients.add(ws)
        try:
            async for raw in ws:
                frame = json.loads(raw)
                with self._lock:
                    self.frames.append(frame)
                if self.drop_before_ack > 0:
                    self.drop_before_ack -= 1
                    await ws.close()
                    return
                rejected = [
                    {"index": i, "error": "rejected by test"}
                    for i, e in enumerate(frame["batch"])
                    if e.get("event") in self.reject_events
                ]
                await ws.send(
                    json.dumps(
                        {
                            "ack": frame["seq"],
                            "accepted": len(frame["batch"]) - len(rejected),
                            "rejected": rejected,
                        }
                    )
                )
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)


EMPTY_DECISIONS: dict[str, Any] = {"popups": [], "recommendations": {}, "public": {}}


class PageServer:
    """Serves HTML fixtures with the gateway/api urls filled in, the built
    tracker (optionally delayed, to prove the snippet queues) and its widgets
    file, records `POST /v1/batch` beacons, and stands in for the decisions
    API: `GET /v1/decisions/{id}` answers `self.decisions` (empty decisions
    unless a test sets them; 503 for None) and is recorded in `self.decision_reads`."""

    def __init__(self) -> None:
        self.beacons: list[dict[str, Any]] = []
        self.decisions: dict[str, Any] | None = EMPTY_DECISIONS  # None: the read fails (503)
        self.decision_reads: list[tuple[str, dict[str, str]]] = []
        self.decisions_delay = 0.0
        self.decisions_answered = 0
        self.requested: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                owner.requested.append(url.path)
                if url.path == "/attimo.js":
                    time.sleep(float(query.get("delay", "0")))
                    self._send(200, DIST.read_bytes(), "application/javascript")
                    return
                if url.path == "/attimo-widgets.js":
                    self._send(200, WIDGETS.read_bytes(), "application/javascript")
                    return
                if url.path.startswith("/v1/decisions/"):
                    visitor = urllib.parse.unquote(url.path[len("/v1/decisions/"):])
                    owner.decision_reads.append((visitor, query))
                    time.sleep(owner.decisions_delay)
                    if owner.decisions is None:
                        self._send(503, b'{"error": "store unavailable"}', "application/json")
                    else:
                        self._send(200, json.dumps(owner.decisions).encode(), "application/json")
                    owner.decisions_answered += 1
                    return
                fixture = FIXTURES / url.path.lstrip("/")
                if url.path.endswith(".html") and fixture.is_file():
                    self._send(200, owner.render(fixture, query).encode(), "text/html")
                    return
                self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.path == "/v1/batch":
                    owner.beacons.append(
                        {"content_type": self.headers.get("Content-Type"), "body": json.loads(body)}
                    )
                self._send(200, b'{"success": true}', "application/json")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def render(self, fixture: Path, query: dict[str, str]) -> str:
        """Fill a fixture; `?data-flush-ms=50` style params become script-tag attributes."""
        attrs = "".join(f' {k}="{v}"' for k, v in query.items() if k.startswith("data-"))
        delay = query.get("delay", "0")
        return string.Template(fixture.read_text()).substitute(
            script_src=f"/attimo.js?delay={delay}",
            write_key=WRITE_KEY,
            gateway=query.get("gateway", ""),
            api=self.base,
            attrs=attrs,
        )

    def url(self, fixture: str, **params: str) -> str:
        query = urllib.parse.urlencode({k.replace("_", "-"): v for k, v in params.items()})
        return f"{self.base}/{fixture}" + (f"?{query}" if query else "")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""`attimo demo --shoppers N`: simulated shoppers at a human pace, beside a running Attimo.

Each shopper is one browser: its own websocket to the gateway, the tracker's
frames and acks, a few seconds between clicks, the same funnels as the
benchmarks' load (landing → category → products → cart → checkout → order
or abandonment, sign-ups, returning visitors). Orders and e-mail opens go
through the Segment HTTP API, as a shop's back end would send them. It runs
against an already running stack (the settings' gateway_url / api_url and
write key, which `attimo` finds where `attimo run` keeps them) until Ctrl-C
or `--seconds`. Each visit is logged with the visitor's id, so its profile
can be looked up while it changes.

A write key or origin the gateway refuses (close 4401 / 4403 / 1008, or
HTTP 401 / 403) is final: the demo says so once and exits instead of
reconnecting forever, like the browser tracker.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson
from rich.console import Console
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from api.demo.campaigns import install_or_warn as install_demo_campaigns
from api.demo.catalog_load import load_or_warn as load_demo_catalog
from api.demo.model import ShopperModel, Visitor, encode, iso
from api.demo.segments import install_or_warn as install_demo_segments
from api.demo.status import REFRESH_S, DemoStatus, summary
from api.errors import CLOSE_ORIGIN_NOT_ALLOWED, CLOSE_UNKNOWN_WRITE_KEY, ApiError
from state.settings import Settings
from state.validation import Frame, HttpBatch

log = logging.getLogger("attimo.demo")

CLOSE_POLICY_VIOLATION: Final = 1008
REFUSED_CLOSE_CODES: Final = frozenset({CLOSE_UNKNOWN_WRITE_KEY, CLOSE_ORIGIN_NOT_ALLOWED, CLOSE_POLICY_VIOLATION})
REFUSED_STATUSES: Final = frozenset({401, 403})
REPORT_EVERY_S: Final = 10.0
HTTP_TIMEOUT_S: Final = 5.0

Stats = dict[str, int]


class WriteKeyRefusedError(ApiError):
    """The gateway or the API refused the demo's write key (or origin): retrying cannot help."""


def _refusal(exc: Exception) -> str | None:
    """Why the gateway refused the demo for good, or None for a failure worth a reconnect."""
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code in REFUSED_CLOSE_CODES:
        return f"websocket closed {exc.rcvd.code} ({exc.rcvd.reason})"
    if isinstance(exc, InvalidStatus) and exc.response.status_code in REFUSED_STATUSES:
        return f"websocket handshake answered HTTP {exc.response.status_code}"
    return None


class Shopper:
    """One simulated browser that keeps shopping: session after session."""

    def __init__(self, n: int, model: ShopperModel, settings: Settings, pace_s: tuple[float, float],
                 stats: Stats) -> None:
        self.n = n
        self.model = model
        self.url = f"{settings.gateway_url}/v1/stream?key={settings.write_key}"
        self.batch_url = f"{settings.api_url}/v1/batch"
        self.auth = "Basic " + base64.b64encode(f"{settings.write_key}:".encode()).decode()
        self.pace_s = pace_s
        self.stats = stats
        self.rng = random.Random(n)
        self.known: list[Visitor] = []
        self.seq = 0

    async def run(self, until: float) -> None:
        """Shop until the monotonic time `until`, reconnecting after a passing failure."""
        backoff = 0.5
        while time.monotonic() < until:
            try:
                async with connect(self.url, compression=None) as ws:
                    backoff = 0.5
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        while time.monotonic() < until:
                            await self._session(ws, until)
                            # The pause between visits ends at `until` too: --seconds 3 stops after 3 s, not 20.
                            pause = self.rng.uniform(*self.pace_s) * 3
                            await asyncio.sleep(max(0.0, min(pause, until - time.monotonic())))
                    finally:
                        reader.cancel()
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                refusal = _refusal(exc)
                if refusal is not None:
                    raise WriteKeyRefusedError(refusal) from exc
                log.warning("shopper reconnecting", extra={"shopper": self.n, "error": str(exc)})
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    async def _read(self, ws: ClientConnection) -> None:
        # A closed socket ends the reading quietly: the sender sees it too, and decides what follows.
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                reply = orjson.loads(message)
                if "decision" in reply:
                    self.stats["decisions"] += 1
                elif reply.get("rejected") or reply.get("error"):
                    log.warning("events rejected", extra={"shopper": self.n, "reply": reply})

    async def _session(self, ws: ClientConnection, until: float) -> None:
        if self.known and self.rng.random() < 0.3:
            visitor = self.rng.choice(self.known)
        else:
            visitor = self.model.new_visitor()
            self.known = [*self.known[-9:], visitor]
        log.info("shopper visiting", extra={"shopper": self.n, "visitor": visitor.anonymous_id,
                                            "user": visitor.user_id})
        session = self.model.session(visitor, self.model.days - 1)
        for event in session.browser:
            await asyncio.sleep(max(0.0, min(self.rng.uniform(*self.pace_s), until - time.monotonic())))
            if time.monotonic() >= until:
                return
            event["timestamp"] = iso(datetime.now(UTC))
            self.seq += 1
            frame = Frame(self.seq, [msgspec.Raw(encode(event))], sent_at=datetime.now(UTC))
            # A text frame, as a browser's JSON.stringify sends (the gateway refuses binary).
            await ws.send(msgspec.json.encode(frame).decode())
            self.stats["events"] += 1
        for event in session.server:
            event["timestamp"] = iso(datetime.now(UTC))
            status = await asyncio.to_thread(self._post, event)
            if status in REFUSED_STATUSES:
                raise WriteKeyRefusedError(f"POST /v1/batch answered HTTP {status}")
            self.stats["server_events" if status == 200 else "server_errors"] += 1

    def _post(self, event: dict[str, Any]) -> int:
        """Send one server-side event as a shop's back end would; the HTTP status (0: no answer)."""
        body = msgspec.json.encode(HttpBatch([msgspec.Raw(encode(event))], sent_at=datetime.now(UTC)))
        request = urllib.request.Request(self.batch_url, data=body, method="POST", headers={
            "Authorization": self.auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0


async def _report(stats: Stats, on_tick: Callable[[], None] | None) -> None:
    """Log the counts every REPORT_EVERY_S; between, call `on_tick` (the live status) twice a second."""
    logged = time.monotonic()
    while True:
        await asyncio.sleep(REFRESH_S if on_tick else REPORT_EVERY_S)
        if on_tick:
            on_tick()
        if time.monotonic() - logged >= REPORT_EVERY_S:
            logged = time.monotonic()
            log.info("demo shoppers", extra=dict(stats))


async def run_demo(settings: Settings, shoppers: int, seconds: float | None, seed: int,
                   pace_s: tuple[float, float], stats: Stats, on_tick: Callable[[], None] | None = None) -> None:
    """Run `shoppers` shoppers until `seconds` pass (or forever), counting what they send in `stats`.

    Raises WriteKeyRefusedError, after stopping every shopper, as soon as one
    of them is refused.
    """
    until = time.monotonic() + seconds if seconds else float("inf")
    model = ShopperModel(seed, prefix="demo", days=1)
    tasks = [asyncio.create_task(Shopper(n, model, settings, pace_s, stats).run(until)) for n in range(shoppers)]
    reporter = asyncio.create_task(_report(stats, on_tick))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in [*tasks, reporter]:
            task.cancel()
        await asyncio.gather(*tasks, reporter, return_exceptions=True)
    for task in done:
        task.result()  # raises the failure that ended the demo early, if one did


def main(argv: list[str] | None = None) -> None:
    """`attimo demo`: parse the options, run the shoppers, log what they sent."""
    settings = Settings()
    parser = argparse.ArgumentParser(prog="attimo demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=settings.demo_shoppers)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--min-pause", type=float, default=1.5, help="seconds between a shopper's clicks, at least")
    parser.add_argument("--max-pause", type=float, default=6.0, help="… and at most")
    parser.add_argument("--no-campaigns", action="store_true",
                        help="leave the demo shop's popup campaigns alone (default: (re)install them first)")
    parser.add_argument("--no-segments", action="store_true",
                        help="leave the segments alone (default: (re)install the demo segments first)")
    parser.add_argument("--no-catalog", action="store_true",
                        help="leave the catalog alone (default: load the demo shop's products through the API)")
    args = parser.parse_args(argv)
    if args.shoppers < 1:
        parser.error("--shoppers must be at least 1")
    log.info("demo starting", extra={"shoppers": args.shoppers, "gateway": settings.gateway_url,
                                     "api": settings.api_url})
    if not args.no_campaigns:
        install_demo_campaigns(settings.api_url, settings.admin_token)
    if not args.no_segments:
        install_demo_segments(settings.api_url, settings.admin_token)
    if not args.no_catalog:
        load_demo_catalog(settings.api_url, settings.admin_token)
    stats: Stats = {"events": 0, "server_events": 0, "server_errors": 0, "decisions": 0}
    pace_s = (args.min_pause, args.max_pause)
    started = time.monotonic()
    try:
        with DemoStatus(stats, args.shoppers, args.seconds) as status:
            asyncio.run(run_demo(settings, args.shoppers, args.seconds, args.seed, pace_s, stats, status.refresh))
    except KeyboardInterrupt:
        log.info("demo stopped", extra=stats)
        Console().print(summary(stats, args.shoppers, time.monotonic() - started))
        return
    except WriteKeyRefusedError as exc:
        log.error("Attimo refused the demo's write key or origin; start `attimo run` first (it keeps its "
                  "write key in ATTIMO_DATA_DIR) or set ATTIMO_WRITE_KEY to a key it knows",
                  extra={"refusal": str(exc), "data_dir": str(settings.data_dir), **stats})
        raise SystemExit(1) from None
    log.info("demo finished", extra=stats)
    Console().print(summary(stats, args.shoppers, time.monotonic() - started))

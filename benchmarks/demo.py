"""`python -m benchmarks.demo --shoppers N` (`attimo demo`): simulated shoppers at a human pace.

Each shopper is one browser: its own websocket to the gateway, the tracker's
frames and acks, a few seconds between clicks, the same funnels as the load
generator (landing → category → products → cart → checkout → order or
abandonment, sign-ups, returning visitors). Orders and e-mail opens go
through the Segment HTTP API, as a shop's back end would send them. It runs
against an already running stack (settings' gateway_url / api_url and write
key) until Ctrl-C or `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from benchmarks.http_client import HttpConnection, basic_auth
from benchmarks.shoppers import ShopperModel, Visitor, encode
from benchmarks.ws_protocol import frame_bytes, iso_now
from state.logs import configure_logging
from state.settings import Settings

log = logging.getLogger("attimo.demo")


class Shopper:
    """One simulated browser that keeps shopping: session after session."""

    def __init__(
        self,
        n: int,
        model: ShopperModel,
        settings: Settings,
        pace_s: tuple[float, float],
        stats: dict[str, int],
    ) -> None:
        self.n = n
        self.model = model
        self.url = f"{settings.gateway_url}/v1/stream?key={settings.write_key}"
        self.api = HttpConnection(settings.api_url)
        self.auth = basic_auth(settings.write_key)
        self.pace_s = pace_s
        self.stats = stats
        self.rng = random.Random(n)
        self.known: list[Visitor] = []
        self.seq = 0

    async def run(self, until: float) -> None:
        backoff = 0.5
        while time.monotonic() < until:
            try:
                async with connect(self.url, compression=None) as ws:
                    backoff = 0.5
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        while time.monotonic() < until:
                            await self._session(ws, until)
                            await asyncio.sleep(self.rng.uniform(*self.pace_s) * 3)
                    finally:
                        reader.cancel()
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                log.warning("shopper reconnecting", extra={"shopper": self.n, "error": str(exc)})
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)
        await self.api.close()

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                reply = orjson.loads(message)
                if "decision" in reply:
                    self.stats["decisions"] += 1
                elif reply.get("rejected") or reply.get("error"):
                    log.warning("events rejected", extra={"shopper": self.n, "reply": reply})

    async def _session(self, ws: Any, until: float) -> None:
        if self.known and self.rng.random() < 0.3:
            visitor = self.rng.choice(self.known)
        else:
            visitor = self.model.new_visitor()
            self.known = [*self.known[-9:], visitor]
        session = self.model.session(visitor, self.model.days - 1)
        for event in session.browser:
            if time.monotonic() >= until:
                return
            await asyncio.sleep(self.rng.uniform(*self.pace_s))
            event["timestamp"] = iso_now()
            self.seq += 1
            # Text frames, as a browser's JSON.stringify sends (the gateway refuses binary).
            await ws.send(frame_bytes(self.seq, b"[" + encode(event) + b"]").decode())
            self.stats["events"] += 1
        for event in session.server:
            event["timestamp"] = iso_now()
            body = b'{"batch":[' + encode(event) + b"]}"
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                reply = await self.api.send(
                    self.api.prepare(
                        "POST",
                        "/v1/batch",
                        body,
                        {"Authorization": self.auth, "Content-Type": "application/json"},
                    )
                )
                self.stats["server_events" if reply.status == 200 else "server_errors"] += 1


async def run_demo(
    settings: Settings, shoppers: int, seconds: float | None, seed: int, pace_s: tuple[float, float]
) -> dict[str, int]:
    """Run `shoppers` shoppers until `seconds` pass (or forever); returns what was sent."""
    until = time.monotonic() + seconds if seconds else float("inf")
    model = ShopperModel(seed, prefix="demo", days=1)
    stats = {"events": 0, "server_events": 0, "server_errors": 0, "decisions": 0}
    tasks = [Shopper(n, model, settings, pace_s, stats).run(until) for n in range(shoppers)]

    async def report() -> None:
        while True:
            await asyncio.sleep(10)
            log.info("demo shoppers", extra=dict(stats))

    reporter = asyncio.create_task(report())
    try:
        await asyncio.gather(*tasks)
    finally:
        reporter.cancel()
    return stats


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="attimo demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shoppers", type=int, default=settings.demo_shoppers)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument(
        "--min-pause", type=float, default=1.5, help="seconds between a shopper's clicks, at least"
    )
    parser.add_argument("--max-pause", type=float, default=6.0, help="… and at most")
    args = parser.parse_args()
    configure_logging("demo")
    log.info(
        "demo starting",
        extra={"shoppers": args.shoppers, "gateway": settings.gateway_url, "api": settings.api_url},
    )
    with contextlib.suppress(KeyboardInterrupt):
        stats = asyncio.run(
            run_demo(settings, args.shoppers, args.seconds, args.seed, (args.min_pause, args.max_pause))
        )
        log.info("demo finished", extra=stats)


if __name__ == "__main__":
    main()

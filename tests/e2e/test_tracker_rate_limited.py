"""The tracker in headless Chromium against the real gateway's rate limit: every event arrives once.

The gateway (`attimo gateway`, with `attimo api` beside it, as
tests/e2e/test_ingest_limits.py starts them) runs against a private Redis
with a small per-IP limit (2 events/s, burst 4). A page tracks 30 events in
bursts of four one-event frames, far faster than that: the gateway
answers frames over the limit with `{"limited": seq, "retryAfter": s}` and
closes the socket with 4429 after three in a row. What the shop would check
afterwards: every event is in the ingest streams exactly once (none lost to
a limited frame, none stored twice), and the page's queue is empty.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, cast

import pytest

from state import keys
from state.streams import decode_entry
from tests.e2e.test_ingest_limits import SHARDS, Ingest, running_ingest
from tests.helpers import running_redis
from tests.tracker_js.harness import DIST, TRACKER_DIR, WRITE_KEY, PageServer, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(120)]

EVENTS: Final = 30
LIMITS: Final = {
    "RATE_LIMIT_KEY_PER_S": "0", "RATE_LIMIT_READS_PER_S": "0",
    "RATE_LIMIT_IP_PER_S": "2", "RATE_LIMIT_IP_BURST": "4", "RATE_LIMIT_WS_STRIKES": "3",
    "ACCEPT_BOTS": "true",  # the test browser is headless Chromium
}


class KeyedPages(PageServer):
    """The tracker's fixture pages with the write key the gateway knows."""

    write_key = ""

    def render(self, fixture: Path, query: dict[str, str]) -> str:
        return super().render(fixture, query).replace(f'data-key="{WRITE_KEY}"', f'data-key="{self.write_key}"')


@pytest.fixture(scope="module")
def pages() -> Iterator[KeyedPages]:
    if not DIST.exists():
        import subprocess

        subprocess.run([str(TRACKER_DIR / "build.sh")], check=True, timeout=300)
    server = KeyedPages()
    yield server
    server.close()


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    directory = tmp_path_factory.mktemp("tracker-limited")
    with running_redis(directory) as redis_server, running_ingest(redis_server, directory, **LIMITS) as running:
        yield running


def stored_events(ingest: Ingest, visitor: str) -> Counter[str]:
    """How many times each of `visitor`'s events (by messageId) is in the ingest streams."""
    found: Counter[str] = Counter()
    for shard in range(SHARDS):
        for _, fields in cast("list[tuple[bytes, dict[bytes, bytes]]]", ingest.redis.xrange(keys.event_stream(shard))):
            if b"e" in fields:
                found.update(e.message_id or "" for e in decode_entry(fields[b"e"]) if e.anonymous_id == visitor)
    return found


def test_events_over_the_gateways_rate_limit_arrive_exactly_once(
        browser: Any, pages: KeyedPages, ingest: Ingest) -> None:
    pages.write_key = ingest.new_key()
    gateway = ingest.gateway_url.removesuffix("/v1/stream")
    context = browser.new_context()
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        sockets: list[Any] = []
        replies: list[dict[str, Any]] = []

        def on_socket(ws: Any) -> None:
            sockets.append(ws)
            ws.on("framereceived", lambda payload: replies.append(json.loads(payload)))

        page.on("websocket", on_socket)
        page.goto(pages.url("basic.html", gateway=gateway, data_flush_ms="20", data_retry_base_ms="200",
                            data_decisions="false", data_auto_page="false"))
        page.wait_for_function("window.attimo && window.attimo.loaded && attimo('stats').websocket")
        visitor = page.evaluate("attimo('anonymousId')")
        # Bursts of four one-event frames sent at once, far over 2 events/s: after the first burst the
        # gateway refuses frames; three refused in a row (one burst) close the socket with 4429.
        page.evaluate("""async (n) => {
            for (let i = 0; i < n; i++) {
                attimo('track', 'Limited ' + i, {i})
                attimo('flush')
                if (i % 4 == 3) await new Promise((r) => setTimeout(r, 300))
            }
        }""", EVENTS)
        # An event leaves the queue when its frame is acked, and a frame is acked once stored.
        wait_until(lambda: page.evaluate("attimo('stats').queued") == 0, what="the queue to drain", timeout=60)
        time.sleep(0.5)  # nothing more may arrive: a resend of a stored frame would show up here
        stored = stored_events(ingest, visitor)
    finally:
        context.close()

    limited = [r for r in replies if "limited" in r]
    # The gateway did refuse frames, and closed a socket for it (the tracker opened another).
    assert limited and all(r["retryAfter"] >= 1 and r["limit"] == "client IP" for r in limited)
    assert len(sockets) >= 2
    assert len(stored) == EVENTS and set(stored.values()) == {1}, stored

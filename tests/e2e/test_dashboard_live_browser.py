"""The live dashboard in headless Chromium on the real stack, with the load generator running.

The numbers it shows must be the ones the generator sends (events/s within
10 %), the heartbeat latency chart must have points, and the browser must
never have the admin token in a URL. A screenshot of the page under load is
kept as a test artifact (`ATTIMO_TEST_ARTIFACTS`, default `var/test-artifacts/`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.load_plan import build_plan
from benchmarks.shoppers import ShopperModel
from benchmarks.ws_client import LoadResult, LoadRunner
from tests.e2e.conftest import Stack, attimo_run
from tests.e2e.dashboard_browser import log_in as log_in_to
from tests.helpers import running_redis, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(150)]

RATE = 400.0
"""Events per second the generator sends (websocket frames and HTTP batches together)."""
LOAD_S = 14.0
ARTIFACTS = Path(os.environ.get("ATTIMO_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("dashboard-live")
    # The generator sends from one IP faster than a browser may: the per-IP ingest limit is lifted.
    with running_redis(directory / "redis") as redis_server, \
            attimo_run(directory / "stack", redis_server, RATE_LIMIT_IP_PER_S="0") as running:
        yield running


def log_in(browser: Any, stack: Stack) -> tuple[Any, Any, list[str]]:
    """A fresh browser profile logged in through the form, on the live page once its feed has spoken."""
    context, page, requested = log_in_to(browser, stack, "/dashboard", viewport={"width": 1400, "height": 1500})
    page.wait_for_function("() => window.attimoLive && window.attimoLive.snapshots > 0")
    assert not page.page_errors, page.page_errors
    return context, page, requested


def generate(stack: Stack, events: int) -> tuple[threading.Thread, list[LoadResult]]:
    """The benchmarks' load generator, open loop at RATE, in a thread; its result lands in the list."""
    plan = build_plan(ShopperModel(7, prefix="dash"), visitors=events, connections=4, frame_size=4,
                      http_batch=10, max_events=events)
    runner = LoadRunner(stack.gateway_url, stack.api_url, stack.write_key, plan, rate=RATE,
                        time_limit_s=LOAD_S * 3, label="dashboard load")
    results: list[LoadResult] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(runner.run())), daemon=True)
    thread.start()
    return thread, results


def shown_received(page: Any) -> float:
    return float(page.locator("[data-card='Received / s']").inner_text().replace(",", "") or "nan")


def test_the_live_page_follows_the_load_generator(stack: Stack, browser: Any) -> None:
    context, page, requested = log_in(browser, stack)
    try:
        thread, results = generate(stack, int(RATE * LOAD_S))
        shown: list[float] = []

        def sample() -> bool:
            shown.append(shown_received(page))
            if len(shown) == 8:  # mid-load
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-under-load.png"), full_page=True)
            return len(shown) >= 8 and not thread.is_alive()

        wait_for(sample, timeout=LOAD_S * 3, what="the load to finish", interval=1.0)
        thread.join(timeout=5)
        result = results[0]
        page.wait_for_timeout(2500)  # the last complete seconds reach the page
        series = page.evaluate("() => window.attimoLive.last.rates.series")
        latency_points = page.evaluate("() => window.attimoLive.latencyPoints()")
    finally:
        context.close()

    sent = result.events_acked + result.http_events_acked
    assert result.complete and sent == int(RATE * LOAD_S), result.errors
    achieved = sent / result.elapsed_s
    # The seconds the generator was fully at work (its first and last second are partial).
    received = [p["gateway"] + p["http"] for p in series]
    busy = [r for r in received if r > 0][1:-1]
    assert len(busy) >= LOAD_S - 4, received
    assert abs(statistics.median(busy) - achieved) <= 0.10 * achieved, (busy, achieved)
    # Every event the generator had acked is in the dashboard's last minute, plus the heartbeats (one a second).
    heartbeats = len(series)
    assert sent <= sum(received) <= sent + heartbeats
    # The card moved with the load and showed the generator's rate.
    assert any(abs(value - achieved) <= 0.10 * achieved for value in shown), (shown, achieved)
    processed = [p["processed"] for p in series]
    assert sent <= sum(processed) <= sent + heartbeats
    assert latency_points >= 5
    assert not any(stack.admin_token in url for url in requested), "the admin token was in a URL"
    assert any(url.endswith("/dashboard/stream") for url in requested)


def test_the_banner_shows_when_latency_passes_its_threshold(browser: Any, tmp_path: Path) -> None:
    """With a latency threshold no heartbeat can meet, the page raises the banner with the measured p99."""
    with running_redis(tmp_path / "redis") as redis_server, \
            attimo_run(tmp_path / "stack", redis_server, ALERT_LATENCY_P99_S="0.000001") as stack:
        context, page, _ = log_in(browser, stack)
        try:
            page.wait_for_selector("#banner.on", timeout=20_000)
            page.wait_for_function(
                "() => document.getElementById('banner').textContent.includes('latency p99')", timeout=20_000)
            shown = page.locator("#banner").inner_text()
        finally:
            context.close()
    assert "threshold 1e-06 s" in shown, shown

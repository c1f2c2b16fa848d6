"""Fixtures for the tracker's browser tests: one system Chromium per session,
a fresh browser profile per test, a fake gateway and a fixture page server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tracker_js.harness import DIST, TRACKER_DIR, WAIT_S, FakeGateway, PageServer


@pytest.fixture(scope="session")
def tracker_dist() -> Path:
    """The built tracker; built here only if the setup script has not done it."""
    if not DIST.exists():
        subprocess.run([str(TRACKER_DIR / "build.sh")], check=True, timeout=300)
    return DIST


@pytest.fixture
def context(browser: Any, tracker_dist: Path) -> Iterator[Any]:
    """A fresh browser profile per test: empty cookies and localStorage."""
    ctx = browser.new_context()
    ctx.set_default_timeout(WAIT_S * 1000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    """A page that records its console messages (to check the tracker's warnings)."""
    p = context.new_page()
    p.console_messages_seen = []
    p.on("console", lambda m: p.console_messages_seen.append((m.type, m.text)))
    return p


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway().start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., FakeGateway]]:
    """Factory for a gateway that is not running yet (to simulate an outage)."""
    made: list[FakeGateway] = []

    def make(port: int | None = None) -> FakeGateway:
        gw = FakeGateway(port)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


@pytest.fixture
def site() -> Iterator[PageServer]:
    """Serves fixtures; pass `gateway=` to `site.url` to point the tracker at a gateway."""
    server = PageServer()
    yield server
    server.close()

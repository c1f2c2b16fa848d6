"""Fixtures every test may use: a private, real redis-server per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import RedisServer, running_redis

# The test browser is headless Chromium, whose user agent ingest rightly takes for a bot's and drops
# (api.bots). Every process a test starts inherits this; the bot filter's own tests set it to false.
os.environ.setdefault("ATTIMO_ACCEPT_BOTS", "true")
# Tests drive traffic from one IP far faster than one shop's visitors would; the rate limits have their
# own tests (tests/e2e/test_ingest_limits.py), which set them explicitly.
for _rate in ("KEY", "IP", "READS"):
    os.environ.setdefault(f"ATTIMO_RATE_LIMIT_{_rate}_PER_S", "0")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port, private to the test."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A blocking client of the test's private Redis."""
    client = redis_server.client()
    yield client
    client.close()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium per test module, driven by Playwright (never a downloaded browser).

    Module scope, not session: Playwright's sync API keeps an asyncio loop
    running in the main thread while it is open, which would break the
    asyncio tests that run after it.

    Missing Chromium skips browser tests on a developer machine, but fails in
    CI, where the test command installs it: a green run must have run them.
    """
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/setup should have installed it")
        pytest.skip("no system chromium on PATH")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()

"""The README's demo command, tried as a new user would: `attimo demo` in a second terminal beside `attimo run`.

Both terminals share only what a user would have exported in the shell (the
data directory and ports of this test's stack); neither has the write key or
the admin token. The demo must find them where `attimo run` keeps them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.processes import attimo_environment, start_process
from state import dev_credentials
from tests.e2e.conftest import Stack, attimo_run
from tests.helpers import REPO, Process, RedisServer, wait_for

pytestmark = pytest.mark.e2e

ATTIMO = Path(sys.executable).with_name("attimo")  # the console script the README's commands run
SHOPPERS = 10


@pytest.fixture
def shell_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell where neither ATTIMO_WRITE_KEY nor ATTIMO_ADMIN_TOKEN is exported."""
    for name in dev_credentials.VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def attimo_running(shell_without_credentials: None, redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """`attimo run` in the first terminal, with the dev credentials it generates itself."""
    with attimo_run(tmp_path / "run", redis_server, tokens_in_env=False) as stack:
        assert not stack.settings.keys() & set(dev_credentials.VARIABLES)
        yield stack


def attimo(args: list[str], settings: dict[str, str], log: Path) -> Process:
    """`attimo args…` in a second terminal: the repository as working directory, `settings` exported."""
    assert ATTIMO.exists(), f"{ATTIMO} is missing: the package is not installed in this venv (.ci/setup does it)"
    return Process(start_process([str(ATTIMO), *args], attimo_environment(settings), log, cwd=REPO), log)


def log_entries(process: Process) -> list[dict[str, Any]]:
    """The JSON lines a process (and, for `attimo run`, its parts) logged."""
    return [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]


def first_visitors(process: Process, count: int) -> list[str]:
    """The first `count` anonymous ids the demo's shoppers visited with (none until there are that many)."""
    ids = list(dict.fromkeys(e["visitor"] for e in log_entries(process)
                             if e["msg"] == "shopper visiting" and e["process"] == "demo"))
    return ids[:count] if len(ids) >= count else []


def events_counted(stack: Stack, visitor: str) -> int:
    """How many events the visitor's profile counts, through the admin API (0 while it has none)."""
    status, body = stack.get(f"/v1/contacts/{visitor}", admin=True)
    return int(json.loads(body)["counters"].get("events", 0)) if status == 200 else 0


class TestDemoBesideAttimoRun:
    """`attimo demo --shoppers 10` uses the write key `attimo run` generated, with no variable to copy."""

    def test_every_shoppers_events_reach_a_profile_and_nothing_is_refused(
        self, attimo_running: Stack, tmp_path: Path
    ) -> None:
        """Ten shoppers' visits show up as profiles in the admin API; the demo logs no refusal or retry."""
        demo = attimo(["demo", "--shoppers", str(SHOPPERS)], attimo_running.settings, tmp_path / "demo.log")
        try:
            visitors = wait_for(lambda: first_visitors(demo, SHOPPERS), 30, "every shopper to start a visit")
            wait_for(lambda: all(events_counted(attimo_running, v) > 0 for v in visitors), 30,
                     "every shopper's events in its profile")
        finally:
            demo.stop()
        assert demo.popen.returncode == 0, demo.log()[-2000:]
        complaints = [e for e in log_entries(demo) if e["level"] in ("warning", "error", "critical")]
        assert complaints == []
        assert "refused" not in demo.log()

    def test_without_credentials_to_find_the_demo_says_so_once_and_stops(
        self, attimo_running: Stack, tmp_path: Path
    ) -> None:
        """Pointed at a data directory `attimo run` never used, the refused demo exits instead of retrying."""
        elsewhere = {**attimo_running.settings, "ATTIMO_DATA_DIR": str(tmp_path / "never-ran-here")}
        demo = attimo(["demo", "--shoppers", "3", "--min-pause", "0.05", "--max-pause", "0.1"], elsewhere,
                      tmp_path / "refused.log")
        try:
            demo.popen.wait(timeout=30)
        finally:
            demo.stop()
        assert demo.popen.returncode == 1
        errors = [e for e in log_entries(demo) if e["level"] == "error"]
        assert len(errors) == 1 and "4401" in errors[0]["refusal"], errors
        assert not [e for e in log_entries(demo) if e["msg"] == "shopper reconnecting"]


class TestDemoStartedByAttimoRun:
    """`attimo run --demo-shoppers N` supervises the same demo, with the same credentials as its other parts."""

    def test_its_shoppers_events_reach_profiles(
        self, shell_without_credentials: None, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        with attimo_run(tmp_path, redis_server, tokens_in_env=False, options=("--demo-shoppers", "3")) as stack:
            visitors = wait_for(lambda: first_visitors(stack.process, 3), 30, "the shoppers to start a visit")
            wait_for(lambda: all(events_counted(stack, v) > 0 for v in visitors), 30,
                     "the shoppers' events in their profiles")
            demo_lines = [e for e in log_entries(stack.process) if e["process"] == "demo"]
            assert not [e for e in demo_lines if e["level"] in ("warning", "error", "critical")]

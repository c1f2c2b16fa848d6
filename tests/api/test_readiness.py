"""`/readyz` and `attimo status` tell ready from not ready, and say which check failed and why."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from api import processes
from state import keys
from tests.helpers import REPO, Process, RedisServer, free_port, start_process, wait_for


@dataclass
class Served:
    """The API process and what the tests start beside it."""

    url: str
    env: dict[str, str]
    directory: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status), dict(answer.headers), bytes(answer.read())
        except urllib.error.HTTPError as error:
            return int(error.code), dict(error.headers), bytes(error.read())

    def readyz(self) -> tuple[int, dict[str, object]]:
        status, _headers, body = self.get("/readyz")
        return status, json.loads(body)

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`attimo status` as a user runs it, with the same settings."""
        return subprocess.run([sys.executable, "-m", "api.cli", "status", *args], cwd=REPO, text=True,
                              env=processes.attimo_environment(self.env), capture_output=True, timeout=30,
                              check=False)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def served(redis_server: RedisServer, tmp_path: Path) -> Iterator[Served]:
    """The API alone (no dataflow, no dispatcher) against a private Redis."""
    port = free_port()
    env = {"ATTIMO_REDIS_URL": redis_server.url, "ATTIMO_API_PORT": str(port), "ATTIMO_WRITE_KEY": "wk",
           "ATTIMO_ADMIN_TOKEN": "admin", "ATTIMO_RFM_REFRESH_S": "0", "ATTIMO_DATA_DIR": str(tmp_path),
           "ATTIMO_REDIS_TIMEOUT_S": "1", "ATTIMO_READY_MAX_LAG_S": "5",
           "ATTIMO_DISPATCHER_METRICS_PORT": "0"}
    process = start_process(["-m", "api.cli", "api"], env, tmp_path / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(url), 20, "the API to answer")
        yield Served(url, env, tmp_path)
    finally:
        process.stop()


def start_dispatcher(served: Served) -> Process:
    return start_process(["-m", "api.cli", "dispatcher"], served.env, served.directory / "dispatcher.log")


class TestReadiness:
    """Ready needs Redis, a dataflow that keeps up and a live dispatcher."""

    def test_ready_only_once_a_dispatcher_runs_and_status_says_so(self, served: Served) -> None:
        """No dispatcher: 503 naming it, status exit 1; a dispatcher started: 200, status exit 0 with its row."""
        status, body = served.readyz()
        assert status == 503
        assert body["status"] == "not ready" and body["failed"] == ["dispatcher"]
        checks = {c["name"]: c for c in body["checks"]}  # type: ignore[union-attr]
        assert checks["redis"]["ok"] and checks["dataflow_lag"]["ok"]
        assert "no dispatcher" in checks["dispatcher"]["detail"]
        assert "processes" not in body  # pids and memory are not for any caller
        report = served.status()
        assert report.returncode == 1, report.stderr
        assert "not ready" in report.stdout and "FAILED" in report.stdout and "no dispatcher" in report.stdout
        dispatcher = start_dispatcher(served)
        try:
            wait_for(lambda: served.readyz()[0] == 200, 20, "/readyz to answer 200 once the dispatcher runs")
            _status, body = served.readyz()
            assert body == {"status": "ready", "failed": [], "checks": body["checks"]}
            report = served.status()
            assert report.returncode == 0, report.stdout + report.stderr
            assert "Attimo is ready" in report.stdout
            rows = [line for line in report.stdout.splitlines() if "dispatcher" in line and
                    str(dispatcher.popen.pid) in line]
            assert rows, report.stdout
            assert any(line.split("│")[1].strip() == "api" for line in report.stdout.splitlines()
                       if line.count("│") > 3)
            as_json = json.loads(served.status("--json").stdout)
            parts = {p["part"]: p for p in as_json["processes"]}
            assert parts["dispatcher"]["pid"] == dispatcher.popen.pid
            assert parts["dispatcher"]["rss_bytes"] > 10_000_000
        finally:
            dispatcher.stop()

    def test_a_lagging_dataflow_is_not_ready(self, served: Served, redis_client: redis.Redis) -> None:
        """An event waiting unprocessed for longer than ready_max_lag_s fails the lag check."""
        served.env["ATTIMO_READY_REQUIRE_DISPATCHER"] = "false"
        redis_client.xadd(keys.event_stream(0), {"e": b"{}"}, id="1000-0")  # appended long ago, never processed
        status, body = served.readyz()
        assert status == 503 and body["failed"] == ["dataflow_lag", "dispatcher"]
        report = served.status()
        assert report.returncode == 1
        assert "dataflow_lag" in report.stdout and "limit 5 s" in report.stdout
        assert "skipped" in report.stdout  # this status run was told no dispatcher is required

    def test_redis_down_is_not_ready_and_status_exits_2(self, served: Served, redis_server: RedisServer) -> None:
        """With Redis stopped /readyz answers 503 naming redis, `attimo status` exits 2; /healthz is about the API."""
        processes.stop_process(redis_server.process, signal.SIGTERM)
        status, body = served.readyz()
        assert status == 503
        assert "redis" in body["failed"]
        detail = {c["name"]: c["detail"] for c in body["checks"]}["redis"]  # type: ignore[union-attr]
        assert "Redis does not answer" in detail
        report = served.status()
        assert report.returncode == 2
        assert "Redis cannot be reached" in report.stdout


class TestRequestIds:
    """Every API answer carries the request's id."""

    def test_incoming_id_is_echoed_and_a_missing_or_bad_one_is_made(self, served: Served) -> None:
        """X-Request-ID comes back as sent; without one (or with junk) the API makes a fresh id."""
        _s, headers, _b = served.get("/healthz", {"X-Request-ID": "lb-42.abc"})
        assert headers["x-request-id"] == "lb-42.abc"
        _s, first, _b = served.get("/v1/decisions/v1?key=wk")  # the fast path too
        _s, second, _b = served.get("/healthz", {"X-Request-ID": "bad id\twith spaces"})
        assert len(first["x-request-id"]) == 24 and len(second["x-request-id"]) == 24
        assert first["x-request-id"] != second["x-request-id"]

"""The real stack for end-to-end tests: `attimo run` as a process."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Process, RedisServer, free_port, start_process, wait_for


@dataclass
class Stack:
    """A running Attimo: where it listens and its credentials."""

    process: Process
    api_url: str
    gateway_url: str
    write_key: str
    admin_token: str
    redis: RedisServer

    def get(self, path: str, admin: bool = False) -> tuple[int, bytes]:
        """GET from the API; (status, body)."""
        request = urllib.request.Request(self.api_url + path)
        if admin:
            request.add_header("Authorization", f"Bearer {self.admin_token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def running_stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """`attimo run` (gateway + dataflow + API, supervised) against a private Redis."""
    api_port, gateway_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    env = {
        "ATTIMO_REDIS_URL": redis_server.url,
        "ATTIMO_API_PORT": str(api_port),
        "ATTIMO_GATEWAY_PORT": str(gateway_port),
        "ATTIMO_DATA_DIR": str(tmp_path / "var"),
        "ATTIMO_WRITE_KEY": "wk_e2e",
        "ATTIMO_ADMIN_TOKEN": "adm_e2e",
        "ATTIMO_ALLOWED_ORIGINS": api_url,
        "ATTIMO_SNAPSHOT_INTERVAL_S": "1",
    }
    process = start_process(["-m", "api.cli", "run"], env, tmp_path / "stack.log")
    try:
        wait_for(lambda: _healthy(api_url), timeout=30, what="the API to answer /healthz")
        yield Stack(process, api_url, f"ws://127.0.0.1:{gateway_port}", "wk_e2e", "adm_e2e", redis_server)
    finally:
        process.stop()
        if process.popen.returncode not in (0, -2, 130):
            print(process.log())

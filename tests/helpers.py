"""Test helpers shared by every test package: free ports, private Redis, waiting."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A private redis-server started for a test."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@contextmanager
def running_redis(directory: Path, appendonly: bool = False) -> Iterator[RedisServer]:
    """Start redis-server on a free port in `directory`; stop it afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (the test command installs it)"
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "yes" if appendonly else "no", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, process)
    client = server.client()
    wait_for(lambda: _pings(client), timeout=10, what="redis-server to answer")
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


REPO = Path(__file__).resolve().parents[1]


@dataclass
class Process:
    """A real Attimo process started by a test."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_hard(self) -> None:
        """kill -9: no chance to flush or snapshot."""
        self.popen.kill()
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(2)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> Process:
    """Start `python args…` from the repo root with ATTIMO_* settings in `env`."""
    import os
    import sys

    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    handle = log_path.open("ab")
    popen = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full_env, stdout=handle,
                             stderr=subprocess.STDOUT)
    return Process(popen, log_path)


@contextmanager
def running_dataflow(redis_url: str, data_dir: Path, **settings: str) -> Iterator[Process]:
    """The real dataflow (`python -m dataflows`) against `redis_url`."""
    env = {"ATTIMO_REDIS_URL": redis_url, "ATTIMO_DATA_DIR": str(data_dir),
           "ATTIMO_SNAPSHOT_INTERVAL_S": "1", **{f"ATTIMO_{k.upper()}": v for k, v in settings.items()}}
    data_dir.mkdir(parents=True, exist_ok=True)
    process = start_process(["-m", "dataflows"], env, data_dir / "dataflow.log")
    try:
        yield process
    finally:
        process.stop()

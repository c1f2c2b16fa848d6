"""Test helpers shared by every test package: free ports, private Redis, real processes, waiting.

Redis and the parts are started the way `attimo run` and the benchmarks
start them (`api.processes`); only the choices a test makes differ (no AOF
unless asked for, a log file per process).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

from api import processes

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
    """Start redis-server on a free port in `directory` (its log in `redis.log` there); stop it afterwards."""
    port = free_port()
    command = processes.redis_server_command(port, directory, appendonly=appendonly,
                                             logfile=directory / "redis.log")
    server = RedisServer(port, processes.start_process(command))
    try:
        wait_for(lambda: processes.redis_answers(server.url), timeout=10, what="redis-server to answer")
        yield server
    finally:
        processes.stop_process(server.process, signal.SIGTERM)


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
        processes.stop_process(self.popen)


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> Process:
    """Start `python args…` from the repo root with ATTIMO_* settings in `env`."""
    popen = processes.start_process([sys.executable, *args], processes.attimo_environment(env), log_path, cwd=REPO)
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

"""A private Attimo stack for benchmarks: redis-server, gateway, dataflow, API.

Every part is a real process bound to 127.0.0.1 on a free port, configured
through `ATTIMO_*` variables exactly as `attimo run` would, so what is
measured is what ships. CPU time per process is read from `/proc`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import redis

from api.processes import (
    AppendFsync,
    attimo_command,
    attimo_environment,
    redis_answers,
    redis_server_command,
    start_process,
    stop_process,
)
from state import keys

REPO: Final = Path(__file__).resolve().parents[1]
# The code under test: the processes run from here (`--repo` overrides, e.g. to
# benchmark a snapshot while the working tree is mid-edit).
CODE: dict[str, Path] = {"root": REPO}
TICKS: Final = os.sysconf("SC_CLK_TCK")
SHARDS: Final = 4


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `check` until truthy; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Part:
    """One process of the stack."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.popen)


@dataclass
class Stack:
    """The processes of one benchmark stack and how to reach them."""

    directory: Path
    write_key: str = "bench-write-key"
    admin_token: str = "bench-admin-token"
    redis_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    # AOF fsync policy of the stack's Redis; `always` measures what `ATTIMO_REDIS_APPENDFSYNC=always` costs.
    appendfsync: AppendFsync = "everysec"
    parts: dict[str, list[Part]] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port)

    def env(self, **extra: str) -> dict[str, str]:
        values = {
            "ATTIMO_REDIS_URL": self.redis_url,
            "ATTIMO_HOST": "127.0.0.1",
            "ATTIMO_GATEWAY_PORT": str(self.gateway_port),
            "ATTIMO_API_PORT": str(self.api_port),
            "ATTIMO_WRITE_KEY": self.write_key,
            "ATTIMO_ADMIN_TOKEN": self.admin_token,
            "ATTIMO_STREAM_SHARDS": str(SHARDS),
            "ATTIMO_DATA_DIR": str(self.directory / "data"),
            "ATTIMO_ALLOWED_ORIGINS": "*",
            # One load generator on one IP stands for thousands of shoppers: no per-key / per-IP limits.
            "ATTIMO_RATE_LIMIT_KEY_PER_S": "0", "ATTIMO_RATE_LIMIT_IP_PER_S": "0", "ATTIMO_RATE_LIMIT_READS_PER_S": "0",
            **{f"ATTIMO_{k.upper()}": v for k, v in extra.items()},
        }
        return attimo_environment({**values, "PYTHONPATH": str(CODE["root"])})

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Part:
        log_path = self.directory / f"{name}.log"
        part = Part(name, start_process(argv, env, log_path, cwd=CODE["root"]), log_path)
        self.parts.setdefault(name, []).append(part)
        return part

    def start_redis(self) -> None:
        """redis-server with AOF (fsynced as `appendfsync` says), as `attimo run` starts it."""
        command = redis_server_command(self.redis_port, self.directory / "redis", appendfsync=self.appendfsync)
        self._spawn("redis", command, dict(os.environ))
        wait_until(lambda: redis_answers(self.redis_url), 10, "redis-server")

    def start_gateway(self) -> None:
        self._spawn("gateway", attimo_command("api.cli", "gateway"), self.env())
        wait_until(lambda: _listens(self.gateway_port), 30, "the gateway to listen")

    def start_api(self) -> None:
        self._spawn("api", attimo_command("api.cli", "api"), self.env())
        wait_until(lambda: _listens(self.api_port), 30, "the API to listen")

    def start_dataflow(
        self, workers: int = 1, processes: int = 1, recovery: bool = True, tag: str = ""
    ) -> None:
        """The dataflow, as `processes` cluster processes of `workers` threads each."""
        env = self.env(
            workers=str(workers),
            recovery="true" if recovery else "false",
            data_dir=str(self.directory / f"data{tag}"),
        )
        argv = attimo_command("dataflows")
        if processes == 1:
            self._spawn("dataflow", argv, env)
        else:
            addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
            for i in range(processes):
                self._spawn("dataflow", [*argv, "-i", str(i), "-a", addresses], env)
        client = self.client()
        wait_until(lambda: client.hlen(keys.dataflow_progress()) >= SHARDS, 60, "the dataflow to read")

    def start_all(self, workers: int = 1, processes: int = 1) -> None:
        self.start_redis()
        self.start_gateway()
        self.start_dataflow(workers, processes)
        self.start_api()

    def stop(self, name: str | None = None) -> None:
        """Stop one kind of part, or all (Redis last)."""
        names = [name] if name else [n for n in self.parts if n != "redis"] + ["redis"]
        for n in names:
            for part in self.parts.pop(n, []):
                part.stop()

    def pids(self) -> dict[str, list[int]]:
        return {name: [p.popen.pid for p in parts if p.alive()] for name, parts in self.parts.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far, per kind of part (cluster processes summed)."""
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.pids().items()}

    def check_alive(self) -> None:
        for name, parts in self.parts.items():
            for part in parts:
                if not part.alive():
                    raise RuntimeError(f"{name} exited with {part.popen.returncode}:\n{part.tail()}")

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class CpuMeter:
    """CPU seconds per process over an interval (start → stop)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._start: dict[str, float] = {}
        self._self_start = 0.0
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._start = self.stack.cpu()
        self._self_start = cpu_seconds(os.getpid())
        return self

    def stop(self) -> dict[str, float]:
        now = self.stack.cpu()
        self.used = {name: round(now.get(name, 0.0) - self._start.get(name, 0.0), 3) for name in now}
        self.used["load generator"] = round(cpu_seconds(os.getpid()) - self._self_start, 3)
        return self.used


def last_entry_ids(client: redis.Redis) -> dict[int, bytes]:
    """Each shard stream's newest entry id."""
    pipe = client.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.xrevrange(keys.event_stream(shard), count=1)
    out: dict[int, bytes] = {}
    for shard, reply in enumerate(pipe.execute()):
        if reply:
            out[shard] = reply[0][0]
    return out


def caught_up(client: redis.Redis, targets: dict[int, bytes]) -> bool:
    """True once the dataflow has read every shard up to `targets`."""
    progress: dict[bytes, bytes] = client.hgetall(keys.dataflow_progress())  # type: ignore[assignment]
    for shard, target in targets.items():
        done = progress.get(str(shard).encode())
        if done is None or _id(done) < _id(target):
            return False
    return True


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0

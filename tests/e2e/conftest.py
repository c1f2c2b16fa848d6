"""The real stack for end-to-end tests: `attimo run` as a process."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from state import dev_credentials
from tests.helpers import Process, RedisServer, free_port, start_process, wait_for


@dataclass
class PrivateRedis:
    """The redis-server that `attimo run` started (and supervises) itself."""

    port: int
    supervisor_pid: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def pid(self) -> int | None:
        """The pid of the supervisor's redis-server child, if one runs now."""
        out = subprocess.run(["pgrep", "-P", str(self.supervisor_pid), "-f", f"redis-server.*{self.port}"],
                             capture_output=True, text=True, check=False).stdout.split()
        return int(out[0]) if out else None


@dataclass
class Stack:
    """A running Attimo: where it listens and its credentials."""

    process: Process
    api_url: str
    gateway_url: str
    write_key: str
    admin_token: str
    redis: RedisServer | PrivateRedis
    data_dir: Path
    # The ATTIMO_* variables it was started with: what a user would have exported in the shell.
    settings: dict[str, str]

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

    def child_pid(self, pattern: str) -> int | None:
        """The pid of the supervised child whose command line matches `pattern` (a regex)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.popen.pid), "-f", pattern],
                             capture_output=True, text=True, check=False).stdout.split()
        return int(out[0]) if out else None


def healthy(url: str) -> bool:
    """Whether the API answers /healthz with 200 (it answers 503 while Redis is down)."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for_pid(find: Callable[[], int | None], timeout: float, what: str, other_than: int | None = None) -> int:
    """Poll `find` until it gives a pid, and one other than `other_than` (a restarted process)."""
    found = wait_for(lambda: (pid := find()) is not None and pid != other_than and pid, timeout, what)
    return int(found)


@contextmanager
def attimo_run(directory: Path, redis: RedisServer | None, tokens_in_env: bool = True,
               options: tuple[str, ...] = (), **settings: str) -> Iterator[Stack]:
    """`attimo run` in `directory` until the block ends.

    With `redis=None` the URL points at a free port where nothing listens, so
    `attimo run` starts its own private Redis (under `directory/var/redis`)
    and supervises it: a test can then kill it. Without `tokens_in_env` the
    write key and admin token are the ones `attimo run` generates into
    `var/dev-credentials.json`. `options` follow `attimo run` on its command
    line; `settings` are extra `ATTIMO_*` variables.
    """
    api_port, gateway_port = free_port(), free_port()
    redis_port = redis.port if redis is not None else free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    data_dir = directory / "var"
    env = {
        "ATTIMO_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ATTIMO_API_PORT": str(api_port),
        "ATTIMO_GATEWAY_PORT": str(gateway_port),
        "ATTIMO_DATA_DIR": str(data_dir),
        "ATTIMO_ALLOWED_ORIGINS": api_url,
        "ATTIMO_SNAPSHOT_INTERVAL_S": "1",
        **{f"ATTIMO_{name.upper()}": value for name, value in settings.items()},
    }
    if tokens_in_env:
        env |= {"ATTIMO_WRITE_KEY": "wk_e2e", "ATTIMO_ADMIN_TOKEN": "adm_e2e"}
    directory.mkdir(parents=True, exist_ok=True)
    process = start_process(["-m", "api.cli", "run", *options], env, directory / "stack.log")
    try:
        wait_for(lambda: healthy(api_url), timeout=30, what="the API to answer /healthz")
        if tokens_in_env:
            write_key, admin_token = "wk_e2e", "adm_e2e"
        else:
            stored = dev_credentials.load(data_dir)
            assert stored is not None, "attimo run kept no dev credentials"
            write_key, admin_token = stored.write_key, stored.admin_token
        store = redis if redis is not None else PrivateRedis(redis_port, process.popen.pid)
        yield Stack(process, api_url, f"ws://127.0.0.1:{gateway_port}", write_key, admin_token, store, data_dir,
                    env)
    finally:
        process.stop()
        if process.popen.returncode not in (0, -2, 130):
            print(process.log())


@pytest.fixture
def running_stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """`attimo run` (gateway + dataflow + API, supervised) against a private Redis."""
    with attimo_run(tmp_path, redis_server) as stack:
        yield stack


StackFactory = Callable[..., Stack]


@pytest.fixture
def own_redis_stack(tmp_path: Path) -> Iterator[StackFactory]:
    """Starts `attimo run` with its own supervised Redis: `own_redis_stack(tokens_in_env=…, SETTING=value)`."""
    with ExitStack() as stacks:
        count = 0

        def start(tokens_in_env: bool = True, **settings: str) -> Stack:
            nonlocal count
            count += 1
            return stacks.enter_context(attimo_run(tmp_path / f"stack{count}", None, tokens_in_env, **settings))

        yield start

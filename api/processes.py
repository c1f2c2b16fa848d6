"""How a redis-server or an Attimo part is started as a process.

`attimo run`'s supervisor, the benchmarks' stack and the tests all start the
same processes; their command lines, environment and way of stopping live
here once, so what is tested and measured is what ships.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

import redis

AppendFsync = Literal["always", "everysec"]

STOP_TIMEOUT_S: Final = 10.0


def redis_server_command(port: int, directory: Path, *, appendonly: bool = True,
                         appendfsync: AppendFsync = "everysec", logfile: Path | None = None) -> list[str]:
    """The command line of a redis-server on 127.0.0.1:`port` keeping its files in `directory` (created here).

    Never an RDB snapshot. With `appendonly` every write goes to the
    append-only file, fsynced as `appendfsync` says: `always` makes an acked
    event survive a host crash too, at a throughput cost; `everysec` may lose
    the last second (see the README's Durability). Without it the server
    keeps nothing, which is what a test wants. Its log goes to `logfile`,
    else to its stdout.
    """
    directory.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory.resolve()),
            "--save", "", "--appendonly", "yes" if appendonly else "no"]
    if appendonly:
        argv += ["--appendfsync", appendfsync]
    if logfile is not None:
        argv += ["--logfile", str(logfile.resolve())]
    return argv


def redis_answers(url: str) -> bool:
    """Whether a Redis at `url` answers PING now (a loading, refusing or absent one does not)."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def attimo_command(module: str, *args: str) -> list[str]:
    """The command line of an Attimo part, `python -m module args…`, run by this interpreter."""
    return [sys.executable, "-m", module, *args]


def attimo_environment(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `settings` (`ATTIMO_*` variables) for a part.

    Unbuffered, so that a part's log lines reach its log file as they are
    written, and none are lost when it is killed.
    """
    return {**os.environ, **(settings or {}), "PYTHONUNBUFFERED": "1"}


def start_process(argv: list[str], env: Mapping[str, str] | None = None, log: Path | None = None,
          cwd: Path | None = None, own_session: bool = False) -> subprocess.Popen[bytes]:
    """Start `argv`, its stdout and stderr appended to `log` when given (else this process's).

    `own_session` keeps a terminal's Ctrl-C from reaching it: whoever started
    it decides when and how it stops.
    """
    if log is None:
        return subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=own_session)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:  # the child has its own copy of the descriptor
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=own_session)


def stop_process(popen: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT_S) -> None:
    """Ask a process to stop with `sig` (Ctrl-C by default), kill it if it has not within `timeout` s.

    Waits for it either way, so that no zombie is left behind.
    """
    if popen.poll() is not None:
        return
    popen.send_signal(sig)
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=timeout)

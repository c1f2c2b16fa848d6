"""`attimo run`: start every part, watch them, restart the one that dies.

Each part is its own OS process (the dataflow must not share a GIL with the
gateway), started from the same settings passed down as `ATTIMO_*`
variables. A part that exits is restarted after a short pause and the
restart is logged; since the gateway acks only durable events and the
dataflow resumes from its snapshot, a crash costs seconds and loses nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

RESTART_PAUSE_S: Final = 1.0


@dataclass
class Part:
    """One supervised process."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        # Own session: Ctrl-C reaches only the supervisor, which then stops the
        # parts in order (a SIGINT inside Bytewax's Rust worker panics noisily).
        self.popen = subprocess.Popen(self.argv, env=env, start_new_session=True)
        self.started_at = time.monotonic()
        log.info("part started", extra={"part": self.name, "pid": self.popen.pid})

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()


class Supervisor:
    """Starts parts, restarts the dead, stops all of them on Ctrl-C or SIGTERM."""

    def __init__(self, parts: list[Part], env: dict[str, str]) -> None:
        self.parts = parts
        self.env = env
        self._stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        for part in self.parts:
            part.start(self.env)
        try:
            while not self._stopping:
                self._restart_dead()
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _request_stop(self) -> None:
        self._stopping = True

    def _restart_dead(self) -> None:
        for part in self.parts:
            code = part.exited()
            if code is None or self._stopping:
                continue
            time.sleep(RESTART_PAUSE_S)
            part.restarts += 1
            log.warning("part died; restarting",
                        extra={"part": part.name, "exit_code": code, "restarts": part.restarts})
            part.start(self.env)

    def stop(self) -> None:
        """Ask every part to stop (SIGTERM), then insist (SIGKILL) after 10 s.

        SIGTERM ends the dataflow at once, which is safe: it resumes from its
        last snapshot and the stream, like after any crash.
        """
        self._stopping = True
        for part in self.parts:
            if part.popen is not None and part.popen.poll() is None:
                part.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for part in self.parts:
            if part.popen is None:
                continue
            try:
                part.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                part.popen.kill()
                part.popen.wait()
        log.info("all parts stopped")


def python_part(name: str, *args: str) -> Part:
    """A part run as `python -m …` with this interpreter."""
    return Part(name, [sys.executable, "-m", *args])


def environment(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment plus the settings every part must share."""
    return {**os.environ, **overrides, "PYTHONUNBUFFERED": "1"}


def redis_server_part(port: int, directory: Path) -> Part:
    """A private redis-server with AOF, for when none answers at the configured URL."""
    directory.mkdir(parents=True, exist_ok=True)
    return Part("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--dir", str(directory.resolve()), "--appendonly", "yes",
                          "--appendfsync", "everysec", "--save", "",
                          "--logfile", str((directory / "redis.log").resolve())])

"""`attimo run`: start every part, watch them, restart the one that dies.

Each part is its own OS process (the dataflow must not share a GIL with the
gateway), started from the same settings passed down as `ATTIMO_*`
variables. A part that exits is reaped, logged and restarted; since the
gateway acks only durable events and the dataflow resumes from its snapshot,
a crash costs seconds and loses nothing.

Some parts are what the others stand on (the private Redis): they have a
readiness probe, start first and are waited for, stop last, and while one of
them does not answer, a dead part that needs it is not restarted: it would
only die again and burn restarts. A part that keeps dying right after start
waits longer each time (1 s, doubling up to 10 s), so a part that is broken
for good does not spin; once it has stayed up a while, the pause is 1 s again.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from api import processes
from api.errors import ApiError

log = logging.getLogger(__name__)

RESTART_PAUSE_S: Final = 1.0
MAX_RESTART_PAUSE_S: Final = 10.0
# A part up this long was healthy: its next death is a fresh incident (pause 1 s again).
STABLE_AFTER_S: Final = 30.0
READY_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
POLL_S: Final = 0.2

Clock = Callable[[], float]


class PartStartError(ApiError):
    """A part the others depend on did not come up, so nothing else was started."""


def restart_delay(quick_deaths: int) -> float:
    """How long to wait before restarting a part that died right after start `quick_deaths` times in a row."""
    doublings = min(max(0, quick_deaths - 1), 16)
    return min(MAX_RESTART_PAUSE_S, RESTART_PAUSE_S * (1 << doublings))


@dataclass
class Part:
    """One supervised process; `ready` (if any) says whether it answers, and makes it a dependency of the rest."""

    name: str
    argv: list[str]
    ready: Callable[[], bool] | None = None
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)
    quick_deaths: int = 0
    restart_at: float | None = None
    waiting_logged: bool = False

    def start(self, env: dict[str, str], now: float) -> None:
        # Own session: Ctrl-C reaches only the supervisor, which then stops the
        # parts in order (a SIGINT inside Bytewax's Rust worker panics noisily).
        self.popen = processes.start_process(self.argv, env, own_session=True)
        self.started_at = now
        self.restart_at = None
        self.waiting_logged = False
        log.info("part started", extra={"part": self.name, "pid": self.popen.pid})

    def exited(self) -> int | None:
        """The exit code once the process is gone (polling also reaps it: no zombie stays)."""
        return None if self.popen is None else self.popen.poll()

    def answers(self) -> bool:
        """Whether the part is running and, if it has a probe, ready to serve."""
        return self.popen is not None and self.exited() is None and (self.ready is None or self.ready())


class Supervisor:
    """Starts parts, restarts the dead, stops all of them on Ctrl-C or SIGTERM."""

    def __init__(self, parts: list[Part], env: dict[str, str],
                 clock: Clock = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.parts = parts
        # Told the part's name at each restart (`attimo run` counts them in Redis for the dashboard).
        self.on_restart = on_restart
        self.env = env
        self.foundations = [p for p in parts if p.ready is not None]
        self.dependents = [p for p in parts if p.ready is None]
        self._clock = clock
        self._sleep = sleep
        self._stopping = False

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Start everything, call `on_started`, supervise until Ctrl-C / SIGTERM, then stop everything."""
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        try:
            self.start_all()
            if on_started is not None and not self._stopping:
                on_started()
            while not self._stopping:
                self.tick()
                self._sleep(POLL_S)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _request_stop(self) -> None:
        self._stopping = True

    def start_all(self) -> None:
        """Start the parts the others depend on, wait until each answers, then start the rest."""
        for part in self.foundations:
            part.start(self.env, self._clock())
            self._wait_ready(part)
        for part in self.dependents:
            if not self._stopping:
                part.start(self.env, self._clock())

    def _wait_ready(self, part: Part) -> None:
        deadline = self._clock() + READY_TIMEOUT_S
        while not self._stopping and not part.answers():
            code = part.exited()
            if code is not None:
                raise PartStartError(f"{part.name} exited with code {code} while starting")
            if self._clock() > deadline:
                raise PartStartError(f"{part.name} did not answer within {READY_TIMEOUT_S:.0f} s")
            self._sleep(0.05)
        if not self._stopping:
            log.info("part ready", extra={"part": part.name})

    def tick(self) -> None:
        """One supervision pass: reap and schedule the dead, restart those whose pause is over."""
        now = self._clock()
        for part in self.parts:
            if self._stopping:
                return
            if part.restart_at is None:
                code = part.exited()
                if code is None:
                    continue
                self._schedule_restart(part, code, now)
            assert part.restart_at is not None
            if now >= part.restart_at and self._may_restart(part):
                part.restarts += 1
                part.start(self.env, now)
                if self.on_restart is not None:
                    self.on_restart(part.name)

    def _schedule_restart(self, part: Part, code: int, now: float) -> None:
        uptime = now - part.started_at
        if part.ready is None and self._dependencies_down():
            # Its dependency's outage killed it, not a fault of its own: no escalation.
            part.quick_deaths = 1
        else:
            part.quick_deaths = part.quick_deaths + 1 if uptime < STABLE_AFTER_S else 1
        delay = restart_delay(part.quick_deaths)
        part.restart_at = now + delay
        log.warning("part died; restarting", extra={
            "part": part.name, "exit_code": code, "restarts": part.restarts + 1,
            "uptime_s": round(uptime, 1), "delay_s": delay})

    def _may_restart(self, part: Part) -> bool:
        """A dependent restarts only once every part it depends on answers (else it would die again)."""
        if part.ready is not None:
            return True
        down = self._dependencies_down()
        if down and not part.waiting_logged:
            part.waiting_logged = True
            log.info("restart waits for a dependency", extra={"part": part.name, "waiting_for": down})
        return not down

    def _dependencies_down(self) -> list[str]:
        return [f.name for f in self.foundations if not f.answers()]

    def stop(self) -> None:
        """Stop the dependents first, then what they depend on, in reverse order of start.

        Each group is asked to stop (SIGTERM), then made to (SIGKILL) after
        10 s. SIGTERM ends the dataflow at once, which is safe: it resumes
        from its last snapshot and the stream, like after any crash. Redis
        goes last, so no part sees it vanish while shutting down.
        """
        self._stopping = True
        self._stop_group(self.dependents)
        for part in reversed(self.foundations):
            self._stop_group([part])
        log.info("all parts stopped")

    def _stop_group(self, parts: Iterable[Part]) -> None:
        running = [p for p in parts if p.popen is not None and p.popen.poll() is None]
        for part in running:
            assert part.popen is not None
            part.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for part in running:
            assert part.popen is not None
            try:
                part.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                part.popen.kill()
                part.popen.wait()


def python_part(name: str, module: str, *args: str) -> Part:
    """A part run as `python -m module args…` with this interpreter."""
    return Part(name, processes.attimo_command(module, *args))


def redis_server_part(port: int, directory: Path, appendfsync: processes.AppendFsync,
                      ready: Callable[[], bool]) -> Part:
    """A private redis-server with AOF in `directory`, for when none answers at the configured URL."""
    return Part("redis", processes.redis_server_command(port, directory, appendfsync=appendfsync,
                                                        logfile=directory / "redis.log"),
                ready=ready)

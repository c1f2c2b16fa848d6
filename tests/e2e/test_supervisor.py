"""`attimo run` keeps the system up: a part that dies is restarted and nothing is lost."""

from __future__ import annotations

import base64
import json
import logging
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api.supervisor import (
    MAX_RESTART_PAUSE_S,
    STABLE_AFTER_S,
    Part,
    PartStartError,
    Supervisor,
    restart_delay,
)
from tests.e2e.conftest import PrivateRedis, Stack, StackFactory, healthy, wait_for_pid
from tests.helpers import REPO, free_port, wait_for

pytestmark = pytest.mark.e2e


def post_batch(stack: Stack, events: list[dict[str, object]]) -> int:
    """Send a Segment batch the way a server-side Segment library does."""
    body = json.dumps({"batch": events}).encode()
    request = urllib.request.Request(stack.api_url + "/v1/batch", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def order(user_id: str, revenue: float) -> dict[str, object]:
    return {"type": "track", "event": "Order Completed", "userId": user_id,
            "messageId": str(uuid.uuid4()), "properties": {"order_id": str(uuid.uuid4()), "revenue": revenue}}


def child_pid(stack: Stack, module: str) -> int | None:
    """The pid of the supervised child running `python -m <module>`."""
    out = subprocess.run(["pgrep", "-P", str(stack.process.popen.pid), "-f", f"python.* -m {module}$"],
                         capture_output=True, text=True, check=False).stdout.split()
    return int(out[0]) if out else None


class TestSupervision:
    """A crash costs seconds and loses nothing."""

    def test_killed_dataflow_is_restarted_and_every_order_is_counted_once(self, running_stack: Stack) -> None:
        """kill -9 the dataflow; `attimo run` restarts it; orders sent meanwhile all count, once."""
        user = "buyer@example.com"
        assert post_batch(running_stack, [order(user, 10.0) for _ in range(5)]) == 200

        def orders() -> int:
            status, body = running_stack.get(f"/v1/contacts/{user}", admin=True)
            return int(json.loads(body)["counters"]["orders"]) if status == 200 else 0

        wait_for(lambda: orders() == 5, 10, "the first orders to be counted")
        old = wait_for_pid(lambda: child_pid(running_stack, "dataflows"), 5, "the dataflow process")
        os.kill(old, signal.SIGKILL)
        assert post_batch(running_stack, [order(user, 10.0) for _ in range(7)]) == 200
        new = wait_for_pid(lambda: child_pid(running_stack, "dataflows"), 15, "the dataflow to be restarted",
                           other_than=old)
        assert new != old
        wait_for(lambda: orders() == 12, 30, "all 12 orders to be counted exactly once")
        _status, body = running_stack.get(f"/v1/contacts/{user}", admin=True)
        assert json.loads(body)["counters"]["revenue"] == 120.0
        assert "part died; restarting" in running_stack.process.log()


def log_entries(stack: Stack, message: str) -> list[dict[str, object]]:
    """The JSON log lines of `attimo run` and its parts with this message."""
    entries = []
    for line in stack.process.log().splitlines():
        if line.startswith("{") and f'"msg":"{message}"' in line:
            entries.append(json.loads(line))
    return entries


class FakeClock:
    """Supervisor time a test moves by hand; `sleep` advances it and lets a little real time pass."""

    def __init__(self) -> None:
        self.now = 1000.0
        # Fake seconds per real second slept: raised where a test waits out a long timeout.
        self.speed = 1.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds * self.speed
        time.sleep(min(seconds, 0.02))


def sh(name: str, script: str, ready: Callable[[], bool] | None = None) -> Part:
    """A part that is a small shell script (real processes, nothing to import)."""
    return Part(name, ["sh", "-c", script], ready=ready)


def zombie(pid: int) -> bool:
    """Whether `pid` has exited but was not reaped by its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


def pid_of(part: Part) -> int:
    assert part.popen is not None
    return part.popen.pid


def notice_death(supervisor: Supervisor, part: Part, clock: FakeClock) -> float:
    """Let the supervisor find `part` dead (it is left unreaped until then); the pause it chose."""
    wait_for(lambda: zombie(pid_of(part)), 5, f"{part.name} to exit")
    supervisor.tick()
    assert part.restart_at is not None, f"{part.name} was not scheduled for a restart"
    return part.restart_at - clock.now


def kill_and_notice(supervisor: Supervisor, part: Part, clock: FakeClock) -> float:
    """kill -9 `part`, let the supervisor notice; the pause it chose."""
    os.kill(pid_of(part), signal.SIGKILL)
    return notice_death(supervisor, part, clock)


def restart_when_due(supervisor: Supervisor, part: Part, clock: FakeClock) -> None:
    assert part.restart_at is not None
    clock.now = part.restart_at
    supervisor.tick()
    assert part.restart_at is None and part.exited() is None, f"{part.name} was not restarted"


Supervise = Callable[[list[Part]], tuple[Supervisor, FakeClock]]


@pytest.fixture
def supervise() -> Iterator[Supervise]:
    """Builds a Supervisor on a fake clock and stops whatever it started afterwards."""
    made: list[Supervisor] = []

    def build(parts: list[Part]) -> tuple[Supervisor, FakeClock]:
        clock = FakeClock()
        supervisor = Supervisor(parts, dict(os.environ), clock=clock, sleep=clock.sleep)
        made.append(supervisor)
        return supervisor, clock

    yield build
    for supervisor in made:
        supervisor.stop()


class TestRestartPause:
    """A part that keeps dying right after start waits longer each time; after a good run, 1 s again."""

    def test_pause_doubles_from_one_second_up_to_ten(self) -> None:
        """1, 2, 4, 8, then 10 s for every further quick death."""
        assert [restart_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
        assert restart_delay(10_000) == MAX_RESTART_PAUSE_S

    def test_part_that_exits_at_once_backs_off(self, supervise: Supervise) -> None:
        """A part broken for good is restarted after 1, 2, 4, 8, 10 s, not in a tight loop."""
        part = sh("broken", "sleep 0.2; exit 3")
        supervisor, clock = supervise([part])
        supervisor.start_all()
        pauses = []
        for _ in range(5):
            pauses.append(notice_death(supervisor, part, clock))
            restart_when_due(supervisor, part, clock)
        assert pauses == [1, 2, 4, 8, 10]
        assert part.restarts == 5

    def test_part_that_stayed_up_restarts_after_one_second(self, supervise: Supervise) -> None:
        """Once a part has run STABLE_AFTER_S, its next death is a fresh incident."""
        part = sh("worker", "exec sleep 30")
        supervisor, clock = supervise([part])
        supervisor.start_all()
        assert kill_and_notice(supervisor, part, clock) == 1
        restart_when_due(supervisor, part, clock)
        assert kill_and_notice(supervisor, part, clock) == 2
        restart_when_due(supervisor, part, clock)
        clock.now += STABLE_AFTER_S
        assert kill_and_notice(supervisor, part, clock) == 1


class TestReaping:
    """A dead part is reaped (no zombie stays), logged and restarted."""

    def test_killed_part_is_reaped_logged_and_restarted(
            self, supervise: Supervise, caplog: pytest.LogCaptureFixture) -> None:
        """kill -9: the old process is gone from the process table and a new one runs."""
        part = sh("worker", "exec sleep 30")
        supervisor, clock = supervise([part])
        supervisor.start_all()
        old = pid_of(part)
        with caplog.at_level(logging.INFO, logger="api.supervisor"):
            kill_and_notice(supervisor, part, clock)
            assert not Path(f"/proc/{old}").exists()
            restart_when_due(supervisor, part, clock)
        assert pid_of(part) != old and part.restarts == 1
        died = [r for r in caplog.records if r.getMessage() == "part died; restarting"]
        assert [(r.__dict__["part"], r.__dict__["exit_code"]) for r in died] == [("worker", -signal.SIGKILL)]


class TestDependencies:
    """A part with a readiness probe (the private Redis) is what the others stand on."""

    def test_dependency_starts_first_and_is_waited_for(self, supervise: Supervise, tmp_path: Path) -> None:
        """The dependents start only once the dependency answers."""
        flag = tmp_path / "ready"
        redis = sh("redis", f"sleep 0.5; touch {flag}; exec sleep 30", ready=flag.exists)
        app = sh("app", f"test -e {flag} && exec sleep 30")
        supervisor, _clock = supervise([app, redis])
        supervisor.start_all()
        time.sleep(0.3)
        assert app.exited() is None, "the dependent started before its dependency answered"

    def test_dependency_that_never_answers_stops_the_start(self, supervise: Supervise) -> None:
        """Nothing else is started when the dependency exits or never answers."""
        app = sh("app", "exec sleep 30")
        supervisor, _clock = supervise([sh("redis", "exit 1", ready=lambda: False), app])
        with pytest.raises(PartStartError, match="redis exited with code 1"):
            supervisor.start_all()
        assert app.popen is None
        supervisor, clock = supervise([sh("redis", "exec sleep 30", ready=lambda: False)])
        clock.speed = 100
        with pytest.raises(PartStartError, match="did not answer"):
            supervisor.start_all()

    def test_dependent_is_not_restarted_while_its_dependency_is_down(
            self, supervise: Supervise, tmp_path: Path) -> None:
        """A restart would only die again: it waits until the dependency answers."""
        up = tmp_path / "up"
        up.touch()
        redis = sh("redis", "exec sleep 30", ready=up.exists)
        app = sh("app", "exec sleep 30")
        supervisor, clock = supervise([redis, app])
        supervisor.start_all()
        up.unlink()
        kill_and_notice(supervisor, app, clock)
        clock.now += 60
        supervisor.tick()
        assert app.restarts == 0 and app.exited() is not None
        up.touch()
        supervisor.tick()
        assert app.restarts == 1 and app.exited() is None

    def test_death_during_a_dependency_outage_does_not_lengthen_the_pause(
            self, supervise: Supervise, tmp_path: Path) -> None:
        """Dying because Redis is down is not the part's own fault: no back-off for it."""
        up = tmp_path / "up"
        up.touch()
        redis = sh("redis", "exec sleep 30", ready=up.exists)
        app = sh("app", "exec sleep 30")
        supervisor, clock = supervise([redis, app])
        supervisor.start_all()
        assert kill_and_notice(supervisor, app, clock) == 1
        restart_when_due(supervisor, app, clock)
        up.unlink()
        assert kill_and_notice(supervisor, app, clock) == 1

    def test_dependents_stop_before_their_dependency(self, supervise: Supervise, tmp_path: Path) -> None:
        """Redis stops last, so no part sees it vanish while shutting down."""
        order = tmp_path / "order"

        def stops_slowly(name: str, pause: float) -> str:
            return (f"trap 'sleep {pause}; echo {name} >> {order}; kill $!; exit 0' TERM; "
                    "sleep 30 & wait")

        redis = sh("redis", stops_slowly("redis", 0), ready=lambda: True)
        app = sh("app", stops_slowly("app", 0.3))
        supervisor, _clock = supervise([app, redis])
        supervisor.start_all()
        time.sleep(0.2)  # let the shells install their traps
        supervisor.stop()
        assert order.read_text().split() == ["app", "redis"]


def orders_of(stack: Stack, user: str) -> int:
    status, body = stack.get(f"/v1/contacts/{user}", admin=True)
    return int(json.loads(body)["counters"]["orders"]) if status == 200 else 0


class TestPrivateRedis:
    """The Redis `attimo run` starts itself is supervised like every other part."""

    def test_killed_redis_is_restarted_reaped_and_keeps_what_was_acked(self, own_redis_stack: StackFactory) -> None:
        """kill -9 of the private Redis: restarted from its AOF, no zombie, the routes answer again."""
        stack = own_redis_stack()
        redis = stack.redis
        assert isinstance(redis, PrivateRedis)
        assert redis.client().config_get("appendfsync") == {"appendfsync": "everysec"}
        user = f"redis-{uuid.uuid4().hex[:8]}@example.com"
        assert post_batch(stack, [order(user, 5.0) for _ in range(3)]) == 200
        wait_for(lambda: orders_of(stack, user) == 3, 15, "the first orders to be counted")
        old = wait_for_pid(redis.pid, 5, "the private redis-server")
        os.kill(old, signal.SIGKILL)
        wait_for_pid(redis.pid, 15, "Redis to be restarted", other_than=old)
        assert not Path(f"/proc/{old}").exists(), "the killed redis-server was left a zombie"
        wait_for(lambda: healthy(stack.api_url), 15, "the API to answer again")
        assert orders_of(stack, user) == 3
        assert post_batch(stack, [order(user, 5.0) for _ in range(2)]) == 200
        wait_for(lambda: orders_of(stack, user) == 5, 20, "orders sent after the restart to be counted")
        died = [e["part"] for e in log_entries(stack, "part died; restarting")]
        assert died.count("redis") == 1
        assert died.count("dataflow") <= 1, "the dataflow crash-looped while Redis was down"
        assert died.count("gateway") == died.count("api") == 0


class TestBanner:
    """The admin token is shown to a person at a terminal, never written into a log."""

    def test_in_a_log_the_banner_says_where_the_token_is(self, own_redis_stack: StackFactory) -> None:
        """stdout piped to a file: the banner names the 0600 credentials file instead of the token."""
        stack = own_redis_stack(tokens_in_env=False)
        credentials = stack.data_dir / "dev-credentials.json"
        text = stack.process.log()
        assert "Attimo is running." in text
        assert f"admin token    in {credentials} (mode 0600" in text
        assert stack.admin_token not in text
        assert credentials.stat().st_mode & 0o777 == 0o600
        assert stack.get("/v1/contacts/nobody", admin=True)[0] == 404  # the file's token is the one in use

    def test_on_a_terminal_the_banner_shows_the_token(self, tmp_path: Path) -> None:
        """stdout a terminal (a pty here): the token is printed for the person starting Attimo."""
        data_dir = tmp_path / "var"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ATTIMO_DATA_DIR": str(data_dir),
               "ATTIMO_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
               "ATTIMO_API_PORT": str(free_port()), "ATTIMO_GATEWAY_PORT": str(free_port())}
        env.pop("ATTIMO_ADMIN_TOKEN", None)
        output = run_on_a_terminal([sys.executable, "-m", "api.cli", "run"], env, until="Ctrl-C stops everything")
        token = json.loads((data_dir / "dev-credentials.json").read_bytes())["ATTIMO_ADMIN_TOKEN"]
        assert f"admin token    {token}" in output


def run_on_a_terminal(argv: list[str], env: dict[str, str], until: str) -> str:
    """Run `argv` with a pty as stdout/stderr until `until` is printed, then Ctrl-C it; all it printed."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        # Keep reading until every holder of the pty is gone, so no part blocks on a full terminal.
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for(lambda: until.encode() in b"".join(chunks), 30, f"{until!r} on the terminal", interval=0.05)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        os.close(master)
    return b"".join(chunks).decode(errors="replace")

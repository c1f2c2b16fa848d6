"""One way to start a redis-server or an Attimo part, shared by `attimo run`, the benchmarks and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from api import processes
from tests.helpers import free_port, wait_for

Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def started() -> Iterator[Start]:
    """Starts processes through `api.processes` and kills whatever is left at the end of the test."""
    popens: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        popen = processes.start_process(argv, **options)
        popens.append(popen)
        return popen

    yield start
    for popen in popens:
        processes.stop_process(popen, signal.SIGKILL)


class TestRedisServer:
    """The redis-server command line Attimo uses everywhere."""

    def test_with_aof_writes_go_to_the_append_only_file_fsynced_as_asked(
        self, started: Start, tmp_path: Path
    ) -> None:
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        started(processes.redis_server_command(port, tmp_path / "redis", appendfsync="always",
                                               logfile=tmp_path / "redis.log"))
        wait_for(lambda: processes.redis_answers(url), 10, "redis-server to answer")
        client = redis.Redis(port=port)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("dir") == {"dir": str((tmp_path / "redis").resolve())}
        assert "Ready to accept connections" in (tmp_path / "redis.log").read_text()

    def test_without_aof_it_keeps_nothing(self, started: Start, tmp_path: Path) -> None:
        """What a test wants: no AOF, no snapshot."""
        port = free_port()
        started(processes.redis_server_command(port, tmp_path, appendonly=False), log=tmp_path / "out.log")
        wait_for(lambda: processes.redis_answers(f"redis://127.0.0.1:{port}/0"), 10, "redis-server to answer")
        client = redis.Redis(port=port)
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}

    def test_nothing_listening_does_not_answer(self) -> None:
        assert not processes.redis_answers(f"redis://127.0.0.1:{free_port()}/0")


class TestAttimoPart:
    """An Attimo part is `python -m module` with this interpreter, this environment and unbuffered output."""

    def test_command_runs_the_module_with_this_interpreter(self) -> None:
        assert processes.attimo_command("api.cli", "gateway") == [sys.executable, "-m", "api.cli", "gateway"]

    def test_environment_is_this_one_plus_the_settings_unbuffered(self) -> None:
        env = processes.attimo_environment({"ATTIMO_API_PORT": "9999"})
        assert env["ATTIMO_API_PORT"] == "9999"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["PATH"] == os.environ["PATH"]

    def test_output_and_errors_are_appended_to_the_log(self, started: Start, tmp_path: Path) -> None:
        log = tmp_path / "logs" / "part.log"
        log.parent.mkdir()
        log.write_text("earlier run\n")
        command = processes.attimo_command("json.tool", "--help")
        assert started(command, env=processes.attimo_environment(), log=log).wait(timeout=10) == 0
        started(["sh", "-c", "echo to-stderr >&2"], log=log).wait(timeout=10)
        text = log.read_text()
        assert text.startswith("earlier run\n") and "json.tool" in text and "to-stderr" in text


class TestStop:
    """Stopping asks first, then insists, and always reaps."""

    def test_a_process_that_stops_when_asked_exits_by_that_signal(self, started: Start) -> None:
        popen = started(["sleep", "30"])
        processes.stop_process(popen, signal.SIGTERM)
        assert popen.returncode == -signal.SIGTERM

    def test_a_process_that_ignores_ctrl_c_is_killed_after_the_timeout(self, started: Start, tmp_path: Path) -> None:
        log = tmp_path / "stubborn.log"
        stubborn = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                    "print('ignoring Ctrl-C', flush=True); time.sleep(30)")
        popen = started([sys.executable, "-c", stubborn], log=log)
        wait_for(lambda: "ignoring Ctrl-C" in log.read_text(), 10, "the process to ignore Ctrl-C")
        processes.stop_process(popen, timeout=0.5)
        assert popen.returncode == -signal.SIGKILL

    def test_stopping_an_exited_process_does_nothing(self, started: Start) -> None:
        popen = started(["true"])
        popen.wait(timeout=10)
        processes.stop_process(popen)
        assert popen.returncode == 0

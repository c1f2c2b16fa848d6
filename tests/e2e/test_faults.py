"""Fault tests under load: kill -9 any part, twice in a row, and nothing acked is lost or counted twice.

One `attimo run` with its own supervised Redis (`appendfsync always`) serves
the whole module. For each part in turn — the gateway, the API, the dataflow,
Redis — websocket senders (resending an unacked frame after a reconnect,
same messageIds, as the tracker does) and HTTP senders (retrying a batch
until 200, as Segment's libraries do) keep sending orders while the part is
killed, restarted, and killed again. Afterwards, for every sender's contact:
events sent = events acked = orders counted in the profile, exactly.

Every loop is bounded in count and time; the load is small (a few hundred
events per part) so the module runs in well under two minutes on two cores.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from benchmarks.ws_protocol import iso_now
from state import keys
from tests.e2e.conftest import PrivateRedis, Stack, attimo_run, healthy, wait_for_pid
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

WS_SENDERS = 3
HTTP_SENDERS = 3
EVENTS_PER_BATCH = 2
# As the tracker: up to 4 frames in flight, so a kill can find frames appended but not yet acked.
FRAMES_IN_FLIGHT = 4
PAUSE_BETWEEN_BATCHES_S = 0.15
# Upper bounds per sender, far above what a run needs: a stuck part fails the test, never hangs it.
MAX_BATCHES = 150
SEND_DEADLINE_S = 45.0
ACK_TIMEOUT_S = 5.0
RECV_POLL_S = 0.05
RETRY_PAUSE_S = 0.2
# How long a part (or Redis) is frozen before a kill, so that work piles up for the kill to interrupt.
FREEZE_S = 0.3
KILL_AFTER_THAW_S = 0.003
RESTART_TIMEOUT_S = 20.0
COUNT_TIMEOUT_S = 30.0
STREAM_SHARDS = 4
SNAPSHOT_INTERVAL_S = 1.0

Batch = list[dict[str, object]]


def order(user_id: str) -> dict[str, object]:
    """An `Order Completed` with a fresh messageId: each one must count exactly once."""
    return {"type": "track", "event": "Order Completed", "userId": user_id, "messageId": str(uuid.uuid4()),
            "properties": {"order_id": str(uuid.uuid4()), "revenue": 1.0}}


@dataclass
class Tally:
    """What one sender sent and what the server acked, for its own contact."""

    contact: str
    sent: int = 0
    acked: int = 0
    retries: int = 0
    unacked_at_end: int = 0
    errors: list[str] = field(default_factory=list)


class Sender(threading.Thread):
    """Sends batches of orders for one contact until told to stop; an unacked batch goes again until acked."""

    def __init__(self, stack: Stack, stop: threading.Event, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stack = stack
        self.stop = stop
        self.tally = Tally(f"{name}-{uuid.uuid4().hex[:8]}@faults.example")
        self.deadline = time.monotonic() + SEND_DEADLINE_S
        self.batches = 0

    def run(self) -> None:
        try:
            self.send_all()
        finally:
            self.close()

    def send_all(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection, if any."""

    def more(self) -> bool:
        """Whether to make another batch (not told to stop, under the bound)."""
        return not self.stop.is_set() and self.batches < MAX_BATCHES

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def new_batch(self) -> Batch:
        self.batches += 1
        batch = [order(self.tally.contact) for _ in range(EVENTS_PER_BATCH)]
        self.tally.sent += len(batch)
        return batch

    def acked(self, batch: Batch, reply: dict[str, object]) -> None:
        if reply.get("error") or reply.get("accepted", len(batch)) != len(batch) or reply.get("rejected"):
            self.tally.errors.append(f"refused: {reply}")
        else:
            self.tally.acked += len(batch)

    def gave_up(self, unacked: int) -> None:
        self.tally.unacked_at_end = unacked
        if unacked:
            self.tally.errors.append(f"gave up at the deadline with {unacked} events unacked")


class HttpSender(Sender):
    """A Segment server-side library: `POST /v1/batch`, the same batch retried until 200."""

    def send_all(self) -> None:
        while self.more() and not self.expired():
            batch = self.new_batch()
            while (reply := self.post(batch)) is None:
                self.tally.retries += 1
                if self.expired():
                    self.gave_up(len(batch))
                    return
                time.sleep(RETRY_PAUSE_S)
            self.acked(batch, reply)
            time.sleep(PAUSE_BETWEEN_BATCHES_S)

    def post(self, batch: Batch) -> dict[str, object] | None:
        """The reply to one try; None when it is worth retrying (the API restarts, Redis is down)."""
        request = urllib.request.Request(self.stack.api_url + "/v1/batch", method="POST",
                                         data=json.dumps({"batch": batch}).encode())
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization",
                           "Basic " + base64.b64encode(f"{self.stack.write_key}:".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=ACK_TIMEOUT_S) as response:
                return {} if response.status == 200 else None
        except urllib.error.HTTPError as error:
            if error.code in (429, 500, 502, 503, 504):
                return None
            return {"error": f"{error.code} {error.read()[:200]!r}"}
        except OSError:  # refused, reset, timed out: the API is restarting
            return None


class WebsocketSender(Sender):
    """The tracker's protocol: frames in flight; after a reconnect every unacked batch goes again, same messageIds."""

    def __init__(self, stack: Stack, stop: threading.Event, name: str) -> None:
        super().__init__(stack, stop, name)
        self.ws: ClientConnection | None = None
        self.connection = contextlib.ExitStack()
        self.seq = 0
        self.unacked: dict[int, Batch] = {}  # batch number -> events, oldest first
        self.inflight: dict[int, tuple[int, float]] = {}  # seq on this connection -> (batch number, sent at)

    def send_all(self) -> None:
        next_batch_at = 0.0
        while not self.expired():
            now = time.monotonic()
            if self.more() and now >= next_batch_at and len(self.unacked) < FRAMES_IN_FLIGHT:
                self.unacked[self.batches] = self.new_batch()
                next_batch_at = now + PAUSE_BETWEEN_BATCHES_S
            if not self.unacked:
                if not self.more():
                    return
                time.sleep(max(0.0, next_batch_at - now))
                continue
            try:
                self.exchange()
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                # Unacked frames are forgotten with the connection; their batches go out again.
                self.close()
                self.tally.retries += 1
                time.sleep(RETRY_PAUSE_S)
        self.gave_up(sum(len(batch) for batch in self.unacked.values()))

    def exchange(self) -> None:
        """Send every unacked batch not in flight on this connection, then handle one reply if one comes."""
        ws = self.connected()
        in_flight = {number for number, _ in self.inflight.values()}
        for number, batch in self.unacked.items():
            if number not in in_flight:
                self.seq += 1
                ws.send(json.dumps({"seq": self.seq, "sentAt": iso_now(), "batch": batch}))
                self.inflight[self.seq] = (number, time.monotonic())
        try:
            reply = json.loads(ws.recv(timeout=RECV_POLL_S))
        except TimeoutError:
            oldest = min(at for _, at in self.inflight.values())
            if time.monotonic() - oldest > ACK_TIMEOUT_S:
                raise TimeoutError("no ack in time") from None
            return
        sent = self.inflight.pop(reply.get("ack"), None)
        if sent is not None:  # anything else is a pushed decision
            self.acked(self.unacked.pop(sent[0]), reply)

    def connected(self) -> ClientConnection:
        if self.ws is None:
            url = f"{self.stack.gateway_url}/v1/stream?key={self.stack.write_key}"
            self.ws = self.connection.enter_context(
                connect(url, open_timeout=ACK_TIMEOUT_S, close_timeout=0.5, proxy=None, compression=None))
        return self.ws

    def close(self) -> None:
        self.ws = None
        self.inflight.clear()
        with contextlib.suppress(ConnectionClosed, OSError):
            self.connection.close()


def kill_mid_append(stack: Stack, pid: int) -> None:
    """kill -9 an ingest process while its appends sit in Redis's hands.

    Redis is frozen (SIGSTOP) for a moment, so the frames and batches that
    arrive meanwhile are passed on to it and wait; the process is killed
    and Redis thawed: it executes those appends, whose acks can no longer
    be sent. The senders must resend them, and each must still count once.
    """
    redis_pid = _private_redis(stack).pid()
    assert redis_pid is not None
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        time.sleep(FREEZE_S)
        os.kill(pid, signal.SIGKILL)
    finally:
        os.kill(redis_pid, signal.SIGCONT)


def kill_mid_backlog(_stack: Stack, pid: int) -> None:
    """kill -9 a part a few milliseconds after it resumes from a freeze, while it works through the backlog."""
    os.kill(pid, signal.SIGSTOP)
    time.sleep(FREEZE_S)
    os.kill(pid, signal.SIGCONT)
    time.sleep(KILL_AFTER_THAW_S)
    os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Target:
    """A part to kill: how to find its process, how to kill it at a bad moment, how to tell it serves again."""

    name: str
    pid: Callable[[Stack], int | None]
    kill: Callable[[Stack, int], None]
    serves: Callable[[Stack, float], bool]
    # Time to run before a kill: the dataflow must have committed a snapshot, or a
    # restart merely replays from the start and resuming is never tested.
    settle_s: float = 0.0


def _python_child(module_args: str) -> Callable[[Stack], int | None]:
    return lambda stack: stack.child_pid(f"python.* -m {module_args}$")


def _private_redis(stack: Stack) -> PrivateRedis:
    assert isinstance(stack.redis, PrivateRedis)
    return stack.redis


def _gateway_listens(stack: Stack, _killed_at: float) -> bool:
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _dataflow_reads(stack: Stack, killed_at: float) -> bool:
    """The new dataflow has read the streams since the kill (its source beats every 0.1 s)."""
    try:
        with _private_redis(stack).client() as client:
            beat = client.get(keys.dataflow_heartbeat())
    except redis.RedisError:
        return False
    return beat is not None and float(beat) > killed_at


def _redis_answers(stack: Stack, _killed_at: float) -> bool:
    try:
        with _private_redis(stack).client() as client:
            return bool(client.ping())
    except redis.RedisError:  # refused, or still loading its AOF
        return False


GATEWAY = Target("gateway", _python_child("api.cli gateway"), kill_mid_append, _gateway_listens)
API = Target("api", _python_child("api.cli api"), kill_mid_append, lambda stack, _at: healthy(stack.api_url))
DATAFLOW = Target("dataflow", _python_child("dataflows"), kill_mid_backlog, _dataflow_reads,
                  settle_s=2.5 * SNAPSHOT_INTERVAL_S)
REDIS = Target("redis", lambda stack: _private_redis(stack).pid(), kill_mid_backlog, _redis_answers)


def kill_twice(stack: Stack, target: Target) -> list[int]:
    """kill -9 the part, wait until it is restarted and serves, then do it again; the pids killed."""
    killed: list[int] = []
    for round_ in (1, 2):
        pid = wait_for_pid(lambda: target.pid(stack), RESTART_TIMEOUT_S, f"{target.name} to run")
        time.sleep(target.settle_s)
        killed_at = time.time()
        target.kill(stack, pid)
        killed.append(pid)
        wait_for_pid(lambda: target.pid(stack), RESTART_TIMEOUT_S,
                     f"{target.name} to be restarted after kill {round_}", other_than=pid)
        wait_for(functools.partial(target.serves, stack, killed_at), RESTART_TIMEOUT_S,
                 f"{target.name} to serve again after kill {round_}", interval=0.05)
    return killed


@dataclass
class Load:
    """The senders of one phase."""

    senders: list[Sender]
    stop: threading.Event

    @property
    def tallies(self) -> list[Tally]:
        return [s.tally for s in self.senders]


@pytest.fixture
def load(stack: Stack) -> Iterator[Load]:
    """Senders for fresh contacts, started and sending; stopped and joined at the end of the test."""
    stop = threading.Event()
    senders: list[Sender] = [WebsocketSender(stack, stop, f"ws{i}") for i in range(WS_SENDERS)]
    senders += [HttpSender(stack, stop, f"http{i}") for i in range(HTTP_SENDERS)]
    for sender in senders:
        sender.start()
    try:
        wait_for(lambda: all(s.tally.acked >= 2 * EVENTS_PER_BATCH for s in senders), 15,
                 "every sender to get acks before the first kill")
        yield Load(senders, stop)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=SEND_DEADLINE_S)


def finish(load: Load, seconds_after: float = 1.0) -> None:
    """Keep sending a little after the last restart, then stop every sender and wait for them."""
    time.sleep(seconds_after)
    load.stop.set()
    for sender in load.senders:
        sender.join(timeout=SEND_DEADLINE_S)
        assert not sender.is_alive(), f"{sender.name} did not stop"


def counted_orders(stack: Stack, contact: str) -> int:
    status, body = stack.get(f"/v1/contacts/{contact}", admin=True)
    return int(json.loads(body)["counters"]["orders"]) if status == 200 else 0


def caught_up(stack: Stack) -> bool:
    """Whether the dataflow has read every stream shard up to its last entry."""
    with _private_redis(stack).client() as client:
        progress = client.hgetall(keys.dataflow_progress())
        for shard in range(STREAM_SHARDS):
            last = client.xrevrange(keys.event_stream(shard), count=1)
            read = progress.get(str(shard).encode(), b"0-0").decode()
            if last and _id(read) < _id(last[0][0].decode()):
                return False
    return True


def _id(entry_id: str) -> tuple[int, int]:
    millis, seq = entry_id.split("-", 1)
    return int(millis), int(seq)


def assert_sent_acked_counted(stack: Stack, tallies: list[Tally]) -> None:
    """For every contact: everything sent was acked, and the profile counts each acked order once."""
    for tally in tallies:
        assert tally.errors == [] and tally.unacked_at_end == 0, tally
        assert tally.sent == tally.acked, tally

    acked = {t.contact: t.acked for t in tallies}

    def counts() -> dict[str, int]:
        return {contact: counted_orders(stack, contact) for contact in acked}

    def all_counted() -> bool:
        now = counts()
        over = {c: (n, acked[c]) for c, n in now.items() if n > acked[c]}
        assert not over, f"counted more orders than were acked (duplicates), (counted, acked): {over}"
        return now == acked

    try:
        wait_for(all_counted, COUNT_TIMEOUT_S, "every acked order to be counted", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; counted {counts()} but acked {acked}") from None
    wait_for(lambda: caught_up(stack), COUNT_TIMEOUT_S, "the dataflow to read every shard to its end")
    time.sleep(0.5)  # whatever was read last is written by now
    assert counts() == acked


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`attimo run` with its own supervised Redis, every acked write fsynced (`appendfsync always`)."""
    directory: Path = tmp_path_factory.mktemp("faults")
    with attimo_run(directory, None, REDIS_APPENDFSYNC="always", STREAM_SHARDS=str(STREAM_SHARDS),
                    SNAPSHOT_INTERVAL_S=str(SNAPSHOT_INTERVAL_S)) as running:
        yield running


class TestKillEachPartTwiceUnderLoad:
    """kill -9 of any part, twice in a row, while senders send: sent = acked = counted, per contact."""

    def test_private_redis_fsyncs_every_write(self, stack: Stack) -> None:
        """ATTIMO_REDIS_APPENDFSYNC=always reaches the redis-server `attimo run` starts."""
        assert _private_redis(stack).client().config_get("appendfsync") == {"appendfsync": "always"}

    def test_gateway_killed_twice(self, stack: Stack, load: Load) -> None:
        """Websocket senders reconnect and resend the unacked frame; nothing is lost or doubled."""
        self._kill_twice_and_check(stack, load, GATEWAY)

    def test_api_killed_twice(self, stack: Stack, load: Load) -> None:
        """HTTP senders retry the batch until 200; nothing is lost or doubled."""
        self._kill_twice_and_check(stack, load, API)

    def test_dataflow_killed_twice(self, stack: Stack, load: Load) -> None:
        """The dataflow resumes from its snapshot and replays the stream; every order counts once."""
        self._kill_twice_and_check(stack, load, DATAFLOW)

    def test_redis_killed_twice_loses_no_acked_event(self, stack: Stack, load: Load) -> None:
        """With appendfsync always, Redis comes back from its AOF with every acked event."""
        self._kill_twice_and_check(stack, load, REDIS)

    @staticmethod
    def _kill_twice_and_check(stack: Stack, load: Load, target: Target) -> None:
        acked_before = sum(t.acked for t in load.tallies)
        killed = kill_twice(stack, target)
        finish(load)
        print(f"{target.name}: " + ", ".join(f"{t.contact.split('-')[0]} sent {t.sent} retries {t.retries}"
                                             for t in load.tallies))
        assert sum(t.acked for t in load.tallies) > acked_before, "the kills happened while nothing was sent"
        assert_sent_acked_counted(stack, load.tallies)
        assert all(not Path(f"/proc/{pid}").exists() for pid in killed), "a killed part was left a zombie"

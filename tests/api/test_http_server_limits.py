"""The real API process bounds request heads: slow or huge heads cannot hold it open.

One `attimo api` process per module, against a private redis-server, with a
1 s head timeout, a 4 KiB head limit and a 250-connection limit; the tests
talk to it over raw sockets, as a hostile client would.
"""

from __future__ import annotations

import base64
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.helpers import Process, free_port, running_redis, start_process, wait_for

HEAD_TIMEOUT_S = 1.0
MAX_HEAD_BYTES = 4096
MAX_CONNECTIONS = 250
KEEP_ALIVE_S = 5.0  # uvicorn's default, which idle keep-alive connections keep
MARGIN_S = 1.5  # scheduling slack on a shared 2-core machine
WRITE_KEY = "wk_http_limits"


@dataclass
class Api:
    """The running API process and the request the tests send to its hottest route."""

    port: int
    process: Process

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def request(self, *extra_headers: str) -> bytes:
        """A complete GET of the decisions route (served 200 for any visitor)."""
        lines = [f"GET /v1/decisions/visitor-1?key={WRITE_KEY} HTTP/1.1", "Host: attimo.test", *extra_headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("http-limits")
    with ExitStack() as stack:
        redis_server = stack.enter_context(running_redis(directory / "redis"))
        port = free_port()
        env = {
            "ATTIMO_REDIS_URL": redis_server.url, "ATTIMO_HOST": "127.0.0.1", "ATTIMO_API_PORT": str(port),
            "ATTIMO_WRITE_KEY": WRITE_KEY, "ATTIMO_ADMIN_TOKEN": "admin-http-limits",
            "ATTIMO_DATA_DIR": str(directory), "ATTIMO_RFM_REFRESH_S": "0",
            "ATTIMO_HTTP_HEAD_TIMEOUT_S": str(HEAD_TIMEOUT_S), "ATTIMO_HTTP_MAX_HEAD_BYTES": str(MAX_HEAD_BYTES),
            "ATTIMO_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        }
        process = start_process(["-m", "api.cli", "api"], env, directory / "api.log")
        stack.callback(process.stop)
        wait_for(lambda: _healthy(port) or process.popen.poll() is not None, timeout=30, what="the API")
        assert process.popen.poll() is None, process.log()
        yield Api(port, process)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP response with a Content-Length: (status, body)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response head: {buffer!r}"
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a response body"
        body += chunk
    return int(head[9:12]), body


def until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while True:
        remaining = started + within - time.monotonic()
        assert remaining > 0, f"the server kept the connection open for {within} s (sent {received!r})"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def status_of(raw: bytes) -> int:
    return int(raw[9:12]) if raw.startswith(b"HTTP/1.1 ") else 0


class TestSlowHeads:
    def test_a_head_sent_a_byte_at_a_time_and_never_finished_is_closed_with_408(self, api: Api) -> None:
        """Dribbling a head keeps nothing alive: 408 and close once the head timeout has passed."""
        with api.connect() as sock:
            started = time.monotonic()
            sock.sendall(api.request()[:-4])  # the whole head but its final blank line
            received = b""
            for byte in b"X-Slow: " + b"a" * 100:
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sock.settimeout(0.2)
                try:
                    received = sock.recv(65536)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    break
                break
            rest, _ = until_closed(sock, MARGIN_S)
            closed_after = time.monotonic() - started
        assert status_of(received + rest) == 408
        assert HEAD_TIMEOUT_S - 0.1 <= closed_after <= HEAD_TIMEOUT_S + MARGIN_S

    def test_a_connection_that_sends_nothing_is_closed_without_an_answer(self, api: Api) -> None:
        """An opened socket that never starts a request is closed after the head timeout, silently."""
        with api.connect() as sock:
            received, after = until_closed(sock, HEAD_TIMEOUT_S + MARGIN_S)
        assert received == b""
        assert after >= HEAD_TIMEOUT_S - 0.1


class TestHugeHeads:
    def test_a_complete_head_over_the_limit_is_answered_431_and_closed(self, api: Api) -> None:
        """A head a little over the size limit, sent at once, gets 431 and the connection closes."""
        with api.connect() as sock:
            sock.sendall(api.request("X-Big: " + "b" * MAX_HEAD_BYTES))
            received, _ = until_closed(sock, MARGIN_S)
        assert status_of(received) == 431

    def test_an_unfinished_head_growing_past_the_limit_is_answered_431_at_once(self, api: Api) -> None:
        """A head that is still arriving is refused as soon as it passes the limit, not at the timeout."""
        with api.connect() as sock:
            sock.sendall(api.request()[:-4] + b"\r\nX-Big: " + b"b" * (2 * MAX_HEAD_BYTES))
            received, after = until_closed(sock, HEAD_TIMEOUT_S + MARGIN_S)
        assert status_of(received) == 431
        assert after < HEAD_TIMEOUT_S

    def test_a_small_head_sent_with_a_large_body_is_not_taken_for_a_large_head(self, api: Api) -> None:
        """Only the head counts: a body arriving in the same write as its head is not part of it."""
        body = b'{"batch": []' + b" " * (3 * MAX_HEAD_BYTES) + b"}"
        head = (f"POST /v1/batch HTTP/1.1\r\nHost: attimo.test\r\nContent-Type: application/json\r\n"
                f"Authorization: Basic {base64.b64encode(f'{WRITE_KEY}:'.encode()).decode()}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with api.connect() as sock:
            sock.sendall(head + body)
            status, _ = read_response(sock)
            assert status not in (408, 431)
            sock.sendall(api.request())
            assert read_response(sock)[0] == 200

    def test_a_head_within_the_limit_is_served(self, api: Api) -> None:
        """Large but allowed heads (big cookies) are served as usual."""
        with api.connect() as sock:
            sock.sendall(api.request("Cookie: c=" + "c" * (MAX_HEAD_BYTES - 200)))
            status, body = read_response(sock)
        assert status == 200 and b"popups" in body


class TestNormalClients:
    def test_a_request_is_served_while_200_slow_heads_are_open_and_those_are_all_closed(self, api: Api) -> None:
        """Slow heads neither delay a normal client nor outlive the head timeout."""
        slow = [api.connect() for _ in range(200)]
        try:
            for sock in slow:
                sock.sendall(api.request()[:-4])
            started = time.monotonic()
            with api.connect() as sock:
                sock.sendall(api.request())
                status, _ = read_response(sock)
            assert status == 200
            assert time.monotonic() - started < HEAD_TIMEOUT_S / 2
            answers = [until_closed(sock, HEAD_TIMEOUT_S + MARGIN_S)[0] for sock in slow]
            assert {status_of(answer) for answer in answers} == {408}
        finally:
            for sock in slow:
                sock.close()

    def test_at_the_connection_limit_a_new_client_takes_the_place_of_the_oldest_slow_head(self, api: Api) -> None:
        """A flood of slow heads up to the connection limit cannot lock out a client that sends its head."""
        slow = [api.connect() for _ in range(MAX_CONNECTIONS)]
        try:
            for sock in slow:
                sock.sendall(api.request()[:-4])
            with api.connect() as sock:
                sock.sendall(api.request())
                status, _ = read_response(sock)
            assert status == 200
            oldest, _ = until_closed(slow[0], MARGIN_S)
            assert status_of(oldest) == 503
        finally:
            for sock in slow:
                sock.close()

    def test_keep_alive_outlasts_the_head_timeout_and_pipelined_requests_are_answered(self, api: Api) -> None:
        """An idle keep-alive connection follows uvicorn's keep-alive, not the head timeout."""
        with api.connect() as sock:
            sock.sendall(api.request())
            assert read_response(sock)[0] == 200
            time.sleep(HEAD_TIMEOUT_S + 0.5)  # idle longer than a head may take, shorter than keep-alive
            sock.sendall(api.request() * 2)
            assert [read_response(sock)[0], read_response(sock)[0]] == [200, 200]
            _, idle_for = until_closed(sock, KEEP_ALIVE_S + MARGIN_S)
        assert idle_for >= KEEP_ALIVE_S - 0.5

"""A real webhook receiver on 127.0.0.1 that answers as it is told and logs every attempt.

Used by the dispatcher's tests and benchmark. It is a small HTTP/1.1
server (keep-alive, `Content-Length` bodies) on its own asyncio loop in a
background thread, so it answers while the test or the benchmark waits.
`answer(webhook_id, nth)` chooses each reply (status, headers, delay); every
attempt is logged with its headers, body, and when it arrived and was
answered. `down()` stops listening and drops open connections (a receiver
outage: attempts get "connection refused"); `up()` listens again on the
same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

MAX_HEAD: Final = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """How to answer one attempt."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """One request as the receiver saw it (header names in lower case)."""

    webhook_id: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    answered_at: float
    status: int
    answered: bool
    nth: int

    @property
    def ok(self) -> bool:
        """Answered 2xx (the response was written to the socket)."""
        return self.answered and 200 <= self.status < 300


Answer = Callable[[str, int], Reply]


def always(status: int = 200) -> Answer:
    """Answer every attempt with `status`."""
    reply = Reply(status)
    return lambda _id, _nth: reply


class WebhookReceiver:
    """An HTTP server on 127.0.0.1:`port` (a free one when 0) logging every webhook attempt."""

    def __init__(self, port: int = 0, answer: Answer | None = None, path: str = "/hooks/attimo") -> None:
        self.port = port
        self.path = path
        self.answer: Answer = answer or always(200)
        self._attempts: list[Attempt] = []
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-receiver", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        self.up()
        return self

    def __exit__(self, *_: object) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def up(self) -> None:
        """Listen (again, on the same port)."""
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)

    def down(self) -> None:
        """Stop listening and drop every open connection."""
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)

    def attempts(self) -> list[Attempt]:
        """Every attempt so far, in the order they were answered."""
        with self._lock:
            return list(self._attempts)

    def delivered(self) -> list[str]:
        """The webhook ids answered 2xx, in order (an id twice if it was delivered twice)."""
        return [a.webhook_id for a in self.attempts() if a.ok]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True,
                                                  backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head[:-4].decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = time.time()
                webhook_id = headers.get("webhook-id", "")
                with self._lock:
                    self._seen[webhook_id] += 1
                    nth = self._seen[webhook_id]
                reply = self.answer(webhook_id, nth)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                response = f"HTTP/1.1 {reply.status} X\r\ncontent-length: 0\r\n{extra}\r\n".encode()
                answered = True
                try:
                    writer.write(response)
                    await writer.drain()
                except (ConnectionError, RuntimeError):
                    answered = False
                with self._lock:
                    self._attempts.append(Attempt(webhook_id, headers, body, received, time.time(), reply.status,
                                                  answered, nth))
                if not answered:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

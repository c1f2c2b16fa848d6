"""A lean Redis connection for the decisions read path: one socket, commands pipelined automatically.

redis-py's asyncio client costs about 50 µs of Python per command (pool
checkout, retry wrapper, one write per command), a third of a decisions
request. Here every command is packed by hiredis into a buffer; the buffer
is written once per event-loop turn, so the reads of all requests that
arrived together go out in one write, and replies, which Redis sends in
order, resolve the waiting futures in order. One connection is enough:
Redis answers each command in microseconds, and a single socket keeps the
replies ordered without bookkeeping.

Failures surface as `redis.exceptions` errors so callers handle them like
any Redis error: `ConnectionError` when the connection is lost or cannot be
made (every waiting command fails; the next command reconnects),
`TimeoutError` when Redis has not answered the oldest command within
`timeout_s` (the connection is then closed, so a hung Redis means 503s, not
stuck requests), `ResponseError` for an error reply.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float

_NO_REPLY: Final = False  # what hiredis.Reader.gets() returns while a reply is incomplete


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where to connect, from a `redis://` / `rediss://` URL."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """Parse `redis[s]://[[user]:password@]host[:port][/db]`."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (redis:// or rediss://)")
        db = parts.path.strip("/")
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=int(db) if db else 0,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, tls=parts.scheme == "rediss")


class _Wire(asyncio.Protocol):
    """The socket's protocol: feeds replies to the oldest waiting futures."""

    def __init__(self, owner: PipelinedRedis) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.owner._waiting
        while (reply := reader.gets()) is not _NO_REPLY:
            future = waiting.popleft()[0]
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                future.set_exception(NoScriptError(message) if message.startswith("NOSCRIPT")
                                     else ResponseError(message))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self, exc)


class PipelinedRedis:
    """Sends commands on one connection, batched per event-loop turn; `call` returns the reply."""

    def __init__(self, address: RedisAddress, timeout_s: float = 5.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._waiting: collections.deque[tuple[asyncio.Future[object], float]] = collections.deque()
        self._buffer: list[bytes] = []
        self._wire: _Wire | None = None
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 5.0) -> PipelinedRedis:
        """A client for `url` (connects on first use)."""
        return cls(RedisAddress.from_url(url), timeout_s)

    async def call(self, *args: Arg) -> object:
        """Send one command and wait for its reply."""
        if self._transport is None:
            await self._connect()
        return await self.send(*args)

    def send(self, *args: Arg) -> asyncio.Future[object]:
        """Queue one command on the open connection; the future gets its reply.

        For callers that cannot await (protocol callbacks): the connection
        must be open (`connected`), else the future fails at once.
        """
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        if self._transport is None:
            future.set_exception(ConnectionError("not connected to Redis"))
            return future
        self._buffer.append(hiredis.pack_command(args))  # type: ignore[arg-type]  # its stub says 1-tuple
        self._waiting.append((future, time.monotonic()))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout_s, self._check_timeout)
        return future

    @property
    def connected(self) -> bool:
        """Whether commands can be sent now without connecting first."""
        return self._transport is not None

    async def connect(self) -> None:
        """Open the connection now (authenticated and on its database) unless it is open."""
        if self._transport is None:
            await self._connect()

    async def close(self) -> None:
        """Close the connection; waiting commands fail."""
        if self._transport is not None:
            self._transport.close()
            self._fail_all(ConnectionError("connection closed"))
            self._transport = self._wire = None

    # -- internals ---------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        loop = self._loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            address = self.address
            context = ssl.create_default_context() if address.tls else None
            try:
                transport, wire = await asyncio.wait_for(loop.create_connection(
                    lambda: _Wire(self), address.host, address.port, ssl=context), self.timeout_s)
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"cannot connect to Redis at {address.host}:{address.port}: {exc!r}") from exc
            self._transport, self._wire = transport, wire
            hello: list[tuple[Arg, ...]] = []
            if address.password is not None:
                hello.append(("AUTH", address.password) if address.username is None
                             else ("AUTH", address.username, address.password))
            if address.db:
                hello.append(("SELECT", address.db))
            for command in hello:
                await self.send(*command)
            self._connecting.set_result(None)
        except BaseException as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # retrieved: nobody else may be waiting
            if self._transport is not None:
                self._transport.close()
                self._transport = self._wire = None
            raise
        finally:
            self._connecting = None

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._buffer and self._transport is not None:
            self._transport.write(b"".join(self._buffer))
        self._buffer.clear()

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        waited = time.monotonic() - self._waiting[0][1]
        if waited >= self.timeout_s:
            if self._transport is not None:
                self._transport.abort()  # connection_lost fails everything waiting
            return
        assert self._loop is not None
        self._watchdog = self._loop.call_later(self.timeout_s - waited, self._check_timeout)

    def _lost(self, wire: _Wire, exc: Exception | None) -> None:
        if wire is self._wire:
            self._transport = self._wire = None
        self._fail_all(RedisTimeoutError("Redis did not answer in time") if exc is None and self._waiting
                       and time.monotonic() - self._waiting[0][1] >= self.timeout_s
                       else ConnectionError(f"connection to Redis lost: {exc!r}"))

    def _fail_all(self, error: Exception) -> None:
        self._buffer.clear()
        while self._waiting:
            future = self._waiting.popleft()[0]
            if not future.done():
                future.set_exception(error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

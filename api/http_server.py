"""The API's HTTP/1.1 server: uvicorn's httptools protocol with limits on request heads.

uvicorn 0.54 with httptools puts no deadline and no size limit on a request
head (request line + headers): a client that trickles one byte every few
seconds keeps its connection, and the parser's growing buffer, for as long as
it likes, and a few thousand such clients hold the process's sockets.
`HardenedHttpToolsProtocol` closes that hole in the protocol itself, so the
ASGI app (and the decisions fast path in particular) never sees such a request:

- a head must be whole within `head_timeout_s` of its first byte (of the
  connection's opening, for the first request), else 408 and close;
- a head larger than `max_head_bytes` is answered 431 and closed;
- past `max_connections` a new connection takes the place of the one that
  has waited longest for its head (or is refused if none is waiting), so a
  flood of slow heads cannot lock out clients that send theirs at once.

A connection that has not sent one byte of a request is closed without an
answer (an answer nobody asked for only confuses clients). Idle keep-alive
connections keep uvicorn's own `timeout_keep_alive`, and a request body is
not timed here: heads are what every request must get past first.

The common case stays cheap (≈ 4 000 CPU instructions, well under 1 µs, per
request under callgrind): a head that arrives in one read never arms a timer;
only a head still unfinished after a read does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

# Where a connection stands between reads: what the next byte it receives is.
_AWAITING_HEAD: Final = 0  # the first byte of a head (a new connection, or one past its last request)
_IN_HEAD: Final = 1  # more of an unfinished head
_IN_BODY: Final = 2  # the head is whole: body bytes, or nothing until the app has answered
_MESSAGE_DONE: Final = 3  # a request just ended inside this read: a pipelined head may follow

_HEAD_TOO_LARGE: Final = b"Request header fields too large."
_HEAD_TOO_SLOW: Final = b"Request head not received in time."
_AT_CAPACITY: Final = b"Too many connections."


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How long and how large a request head may be, and how many connections one process holds."""

    head_timeout_s: float = 10.0
    max_head_bytes: int = 16 * 1024
    max_connections: int = 10_000


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head.

    uvicorn builds one instance per connection with a fixed signature, so the
    limits are a class attribute: `protocol_with(limits)` makes the subclass
    to hand to uvicorn.
    """

    # Per-request callbacks call the base class directly (`super()` costs ~900 CPU
    # instructions a call), and the added state lives in slots: uvicorn's instance
    # dict stays within CPython's shared-keys size (30 keys), past which every
    # attribute read of the protocol gets slower (≈ +1 µs a request, measured).
    __slots__ = ("_head_bytes", "_head_timeout_s", "_head_timer", "_head_unmeasured", "_max_head_bytes", "_phase")

    limits: ClassVar[HttpLimits] = HttpLimits()
    # Connections waiting for a head, oldest first (dicts keep insertion order and timers
    # are armed in time order), so the one to close at the connection limit is found at once.
    waiting_for_head: ClassVar[dict[HardenedHttpToolsProtocol, None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Copied to the instance: the per-read checks are then plain attribute reads.
        self._head_timeout_s = self.limits.head_timeout_s
        self._max_head_bytes = self.limits.max_head_bytes
        self._phase = _AWAITING_HEAD
        # Bytes of the current head received so far, counted per read: a read that starts
        # inside a head belongs to it up to the head's end, which is enough to bound it.
        self._head_bytes = 0
        # A head that began in the middle of a read (pipelined behind a finished request)
        # was not counted from its first byte; it is measured from its parsed form instead.
        self._head_unmeasured = False
        self._head_timer: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The first request must start and finish its head within the timeout too:
        # uvicorn arms no timer before a connection's first request.
        self._arm_head_timer()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase != _IN_BODY:
            self._head_bytes += len(data)
            if phase == _MESSAGE_DONE:
                self._phase = _AWAITING_HEAD
        HttpToolsProtocol.data_received(self, data)
        if self._phase == _IN_HEAD and not self.transport.is_closing():
            # The head is unfinished after this read: too large already, or now on the clock.
            if self._head_bytes > self._max_head_bytes:
                self._refuse(431, _HEAD_TOO_LARGE)
            elif self._head_timer is None:
                self._arm_head_timer()

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._head_unmeasured = self._phase == _MESSAGE_DONE
        self._phase = _IN_HEAD

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._cancel_head_timer()
        # `_head_bytes` may include body bytes of the same read, so only a count over
        # the limit (or no count) needs the exact size.
        too_large = (self._head_unmeasured or self._head_bytes > self._max_head_bytes) and (
            self._parsed_head_size() > self._max_head_bytes
        )
        self._phase = _IN_BODY
        self._head_bytes = 0
        if not too_large:
            HttpToolsProtocol.on_headers_complete(self)
            return
        # Answer through uvicorn's usual request cycle (as it does for `limit_concurrency`),
        # so a body in the same read and any pipelined request are discarded as usual.
        app, self.app = self.app, _head_too_large
        try:
            HttpToolsProtocol.on_headers_complete(self)
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._phase = _MESSAGE_DONE
        HttpToolsProtocol.on_message_complete(self)

    # -- helpers -----------------------------------------------------------------------

    def _parsed_head_size(self) -> int:
        """The head's size in bytes as parsed (request line and header lines, without extra spaces)."""
        method = self.parser.get_method()
        size = len(method) + 1 + len(self.url) + len(b" HTTP/1.1\r\n") + 2
        for name, value in self.headers:
            size += len(name) + 2 + len(value) + 2
        return size

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)
        self.waiting_for_head[self] = None

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            del self.waiting_for_head[self]

    def _head_timed_out(self) -> None:
        self._head_timer = None
        del self.waiting_for_head[self]
        self._refuse(408, _HEAD_TOO_SLOW)

    def _refuse(self, status: int, reason: bytes) -> None:
        """Close the connection, answering `status` if the client has started a request."""
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        if self._phase == _IN_HEAD:
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [b"content-type: text/plain; charset=utf-8\r\n",
                     b"content-length: %d\r\n" % len(reason), b"connection: close\r\n\r\n", reason]
            self.transport.write(b"".join(head))
        self.transport.close()

    def _make_room(self) -> None:
        """At the connection limit: close the connection that has waited longest for its head.

        Clients that send their head at once are never the longest waiters, so
        a flood of slow heads cannot keep them out; if nothing is waiting for a
        head (every connection is busy or idle between requests), the new
        connection is the one refused.
        """
        # Never empty: this connection has just armed its own head timer.
        oldest = next(iter(self.waiting_for_head))
        oldest._refuse(503, _AT_CAPACITY)


def protocol_with(limits: HttpLimits) -> type[HardenedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`) for these limits."""

    class ConfiguredHttpToolsProtocol(HardenedHttpToolsProtocol):
        pass

    ConfiguredHttpToolsProtocol.limits = limits
    ConfiguredHttpToolsProtocol.waiting_for_head = {}
    return ConfiguredHttpToolsProtocol


async def _head_too_large(scope: Scope, receive: Callable[[], Awaitable[Message]],
                          send: Callable[[Message], Awaitable[None]]) -> None:
    """The ASGI answer to a request whose head was over the limit: 431, then close."""
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(_HEAD_TOO_LARGE)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": _HEAD_TOO_LARGE})


def serve_http(app: ASGIApp, *, host: str, port: int, limits: HttpLimits) -> None:
    """Serve `app` with uvicorn (uvloop when installed) and the hardened protocol until interrupted."""
    # No proxy-headers middleware (22 % of the decisions path's CPU in py-spy),
    # no access log, no Server/Date headers: a load balancer adds what it needs.
    # No `limit_concurrency` either: uvicorn counts idle and slow connections
    # towards it and then answers 503 to every request, so slow clients would
    # lock out everyone; `limits.max_connections` bounds connections instead.
    uvicorn.run(app, host=host, port=port, log_level="warning", ws="none", loop="auto",
                http=protocol_with(limits), proxy_headers=False, access_log=False,
                server_header=False, date_header=False)

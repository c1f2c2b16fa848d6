"""A request id for every API request: taken from `X-Request-ID` or made, echoed, bound to the logs.

A load balancer or the shop's back end may already have named the request
(`X-Request-ID`); keeping its id lets one search follow the request across
systems. An id that is missing, too long or holds characters other than
letters, digits and `._:-` is replaced by a fresh one, so a client cannot
write arbitrary text into the logs. The id is echoed in the response's
`X-Request-ID` header, and every log record emitted while the request runs
carries it as `request_id` (a logging filter reads it from a context
variable, so no call site has to pass it along).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any, Final

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER: Final = b"x-request-id"
MAX_LENGTH: Final = 128
_ACCEPTABLE: Final = re.compile(rb"[A-Za-z0-9._:\-]{1,%d}" % MAX_LENGTH)

current_request_id: ContextVar[str | None] = ContextVar("attimo_request_id", default=None)


_PROCESS_PREFIX: Final = os.urandom(6).hex()
_sequence = itertools.count()


def new_request_id() -> str:
    """A fresh id, 24 hex digits: 48 random bits per process, then a counter (a tenth of a UUID's cost)."""
    return f"{_PROCESS_PREFIX}{next(_sequence) & 0xFFFFFFFFFFFF:012x}"


def request_id_from(headers: Any) -> bytes:
    """The client's id if it is acceptable, else a new one."""
    for name, value in headers:
        if name == HEADER:
            if _ACCEPTABLE.fullmatch(value):
                return bytes(value)
            break
    return new_request_id().encode()


class RequestIds:
    """ASGI layer: picks the request's id, binds it for the logs, echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = request_id_from(scope["headers"])
        token = current_request_id.set(raw.decode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, raw)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records emitted while a request runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def bind_request_ids_to_logs() -> None:
    """Install the filter on every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())

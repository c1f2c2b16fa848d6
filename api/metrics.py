"""The API process's Prometheus metrics, and the ASGI layer that times every request.

Metrics live in prometheus_client's default registry, so that `/metrics`
also shows what other modules of the process register there (the process
collector, the heartbeat latency histogram …).

Requests are timed by `RequestMetrics`, the outermost ASGI layer, so the
decisions fast path (`api.decisions_fast`, which answers before FastAPI) is
counted like every routed request. The label is the route's template
(`/v1/contacts/{contact_id}`), never the raw path: ids would make one time
series per visitor. A path no route matched is labelled `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from prometheus_client import Counter, Histogram

from api.decisions_fast import PREFIX as DECISIONS_PREFIX

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DECISIONS_ROUTE: Final = DECISIONS_PREFIX + "{visitor_id}"
UNMATCHED: Final = "unmatched"
# Any other method a client makes up is counted as "other": labels must stay a small, fixed set.
METHODS: Final = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

REQUEST_SECONDS: Final = Histogram(
    "attimo_api_request_seconds", "HTTP request latency of the API, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
INGEST_EVENTS: Final = Counter(
    "attimo_api_ingest_events", "Events received over HTTP ingest (/v1/batch, /v1/track …), by outcome.",
    ["outcome"])
INGEST_ACCEPTED: Final = INGEST_EVENTS.labels("accepted")
INGEST_REJECTED: Final = INGEST_EVENTS.labels("rejected")


def route_label(scope: Scope) -> str:
    """The template of the route that answered, `unmatched` when none did."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    path = scope.get("path", "")
    if isinstance(path, str) and path.startswith(DECISIONS_PREFIX) and len(path) > len(DECISIONS_PREFIX):
        return DECISIONS_ROUTE
    return UNMATCHED


_series: dict[tuple[str, str, int], Any] = {}


def _timer(route: str, method: str, status: int) -> Any:
    """The histogram child of one series, kept: `labels()` costs ~5 µs a call, a dict lookup ~0.1."""
    key = (route, method, status)
    child = _series.get(key)
    if child is None:
        child = _series[key] = REQUEST_SECONDS.labels(route, method, str(status))
    return child


class RequestMetrics:
    """Times each HTTP request from its start to the end of its response, labelled by route and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        # The server and tests reach the wrapped app's attributes (`state`, `router` …) through this layer.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            _timer(route_label(scope), method if method in METHODS else "other", status).observe(elapsed)

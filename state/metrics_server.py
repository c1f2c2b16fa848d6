"""Serve a process's Prometheus metrics on a port of its own (the gateway, the dataflow, the dispatcher).

The API has HTTP already and serves `/metrics` itself; the other parts get
prometheus_client's small threaded HTTP server, which serves the default
registry on any path. Metrics are never worth a part's life: port 0 turns
them off, and a port already taken (a second dispatcher on the same host,
say) is logged and skipped, not fatal.
"""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(part: str, host: str, port: int) -> bool:
    """Start serving this process's metrics on host:port from a daemon thread; whether it listens."""
    if port <= 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics not served: port unavailable",
                    extra={"part": part, "host": host, "port": port, "error": str(exc)})
        return False
    log.info("metrics served", extra={"part": part, "url": f"http://{host}:{port}/metrics"})
    return True

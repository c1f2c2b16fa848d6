"""API logs carry the request's id, and the API's request timings are labelled by route template."""

from __future__ import annotations

import io
import json
import logging

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.logging import log
from api.metrics import RequestMetrics
from api.request_ids import RequestIdFilter, RequestIds
from state.logs import JsonFormatter


def app_that_logs() -> FastAPI:
    app = FastAPI()
    logger = logging.getLogger("attimo.test.request_ids")

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        log(logger, logging.WARNING, "looked at a thing", thing=thing_id)
        return {"id": thing_id}

    return app


class TestRequestIdsInLogs:
    """A log line written while a request runs names the request; the same id is in the response."""

    def test_log_lines_of_a_request_carry_its_id(self) -> None:
        """The client's X-Request-ID, or the one made for it, is the `request_id` of the JSON log line."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter("api"))
        handler.addFilter(RequestIdFilter())
        logger = logging.getLogger("attimo.test.request_ids")
        logger.addHandler(handler)
        try:
            with TestClient(RequestIds(app_that_logs())) as client:
                given = client.get("/v1/things/a", headers={"X-Request-ID": "edge-7"})
                made = client.get("/v1/things/b")
            logging.getLogger("attimo.test.request_ids").warning("outside any request")
        finally:
            logger.removeHandler(handler)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert given.headers["x-request-id"] == "edge-7"
        assert [(e["thing"], e["request_id"]) for e in lines[:2]] == [("a", "edge-7"),
                                                                     ("b", made.headers["x-request-id"])]
        assert "request_id" not in lines[2]


class TestRequestTimings:
    """Timings are labelled by the route's template, never by the raw path."""

    def test_route_template_and_unmatched_paths(self) -> None:
        """Two ids of one route are one series; an unknown path is `unmatched`."""
        def count(route: str, status: str) -> float:
            value = REGISTRY.get_sample_value("attimo_api_request_seconds_count",
                                              {"route": route, "method": "GET", "status": status})
            return value or 0.0

        before = count("/v1/things/{thing_id}", "200"), count("unmatched", "404")
        with TestClient(RequestMetrics(app_that_logs())) as client:
            client.get("/v1/things/x")
            client.get("/v1/things/y")
            client.get("/no/such/path/123")
        assert count("/v1/things/{thing_id}", "200") - before[0] == 2
        assert count("unmatched", "404") - before[1] == 1
        assert REGISTRY.get_sample_value("attimo_api_request_seconds_count",
                                         {"route": "/v1/things/x", "method": "GET", "status": "200"}) is None

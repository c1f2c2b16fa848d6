"""Schemathesis against the real API's /openapi.json: no 5xx on any route, responses as documented.

The real API process (`attimo api`: uvicorn, the head-limited HTTP server,
the decisions fast path in front of FastAPI) runs against a private
redis-server holding a little data (a profile, a segment, a quarantine
record). Schemathesis generates requests for every operation of the schema,
valid and invalid (positive and negative modes), and each is sent three
times: without credentials, with the admin bearer token, and with the write
key (HTTP Basic, as Segment's clients send it, and `X-Attimo-Key`). No
answer may be a server error, and every answer must conform to the schema
where it declares something: the status code, the content type, the
headers, the body.

Bounded (a few examples per operation) so it runs in CI;
`ATTIMO_LONG_FUZZ=1` runs 50 times as many, freshly random.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from state import keys
from state.profile import Counters, Profile, encode_profile
from state.quarantine import QuarantineRecord, queue_quarantine
from state.settings import Settings
from tests.helpers import Process, free_port, running_redis, start_process, wait_for
from tests.state.event_strategies import Generated, fuzz_settings, raw_events

WRITE_KEY: Final = "wk-openapi"
ADMIN: Final = "adm-openapi"
SHARDS: Final = 2
CHECKS: Final = [not_a_server_error, status_code_conformance, content_type_conformance,
                 response_headers_conformance, response_schema_conformance]
CREDENTIALS: Final[dict[str, dict[str, str]]] = {
    "anonymous": {},
    "admin": {"Authorization": f"Bearer {ADMIN}"},
    "write key": {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
                  "X-Attimo-Key": WRITE_KEY},
}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _seed(client: Any) -> None:
    """A little state for the read routes to find: a profile, a quarantined event."""
    profile = Profile(contact_id="0", anonymous_ids=["0"], counters=Counters(events=1, page_views=1))
    client.set(keys.contact_profile("0"), encode_profile(profile))
    with client.pipeline(transaction=False) as pipe:
        queue_quarantine(pipe, QuarantineRecord(id="0", at=time.time(), stage="visitors", error="ValueError: x",
                                                payload='{"type":"page","anonymousId":"0"}', replayable=True),
                         max_records=100, retention_s=3600)
        pipe.execute()


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real API process on a free port, against its own redis-server (one for the whole module)."""
    directory: Path = tmp_path_factory.mktemp("openapi")
    with running_redis(directory / "redis") as server:
        _seed(server.client())
        port = free_port()
        env = {"ATTIMO_REDIS_URL": server.url, "ATTIMO_API_PORT": str(port), "ATTIMO_WRITE_KEY": WRITE_KEY,
               "ATTIMO_ADMIN_TOKEN": ADMIN, "ATTIMO_STREAM_SHARDS": str(SHARDS), "ATTIMO_RFM_REFRESH_S": "0",
               # No dataflow reads the streams here: ingest must not push back (429) for that.
               "ATTIMO_MAX_INGEST_LAG_S": "1e9",
               # Nor a dispatcher: /readyz is told not to expect them (its 503s: tests/api/test_readiness.py).
               "ATTIMO_READY_MAX_LAG_S": "1e9", "ATTIMO_READY_REQUIRE_DISPATCHER": "false",
               "ATTIMO_DATA_DIR": str(directory / "var")}
        process: Process = start_process(["-m", "api.cli", "api"], env, directory / "api.log")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _answers(url) or process.popen.poll() is not None, 20, "the API to answer")
            assert process.popen.poll() is None, process.log()
            yield url
        finally:
            process.stop()
            log = process.log()
            assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> Any:
    """The schema the running API publishes."""
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


INGEST: Final = frozenset(("/v1/batch", "/v1/track", "/v1/page", "/v1/identify", "/v1/alias", "/v1/screen",
                           "/v1/group"))


NEEDS_THE_DATAFLOW: Final = frozenset({("POST", "/v1/admin/segments/preview")})
"""Operations answered by the dataflow: with none here, a valid one waits its `timeout_s` (up to 30 s) and
answers its documented 504. Their bad input and their 504 are tested with the dataflow running and stopped
(tests/api/test_segment_preview.py, tests/e2e/test_segment_preview_flow.py)."""


def documented_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the app documents and answers alone, read from the app, not run."""
    document = create_app(Settings(redis_url="redis://127.0.0.1:1/0")).openapi()
    return [(method.upper(), path) for path, operations in document["paths"].items() for method in operations
            if (method.upper(), path) not in NEEDS_THE_DATAFLOW]


def fuzz(operation: Any, mode: GenerationMode, checks: list[Any], examples: int) -> None:
    """Send `examples` generated requests (of `mode`) three times each, once per set of credentials."""
    @fuzz_settings(examples)
    @given(operation.as_strategy(generation_mode=mode))
    def each_request(case: Any) -> None:
        for headers in CREDENTIALS.values():
            case.call_and_validate(headers=headers, checks=checks, timeout=10)

    try:
        each_request()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # Path parameters are free text, so a request with only those cannot be made invalid.
        pytest.skip(f"schemathesis cannot express an invalid request for {operation.label}")


@pytest.mark.parametrize(("method", "path"), documented_operations(), ids=lambda value: str(value))
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_route_answers_5xx_and_every_answer_is_as_documented(api_schema: Any, method: str, path: str,
                                                                 mode: GenerationMode) -> None:
    """Without credentials, with the admin token and with the write key: never 5xx, always as the schema says."""
    fuzz(api_schema[path][method], mode, CHECKS, examples=4)


@pytest.mark.parametrize("path", sorted(INGEST))
def test_ingest_routes_document_every_status_they_answer(api_schema: Any, path: str) -> None:
    """400, 401, 413 and 429 are part of the ingest contract, so /openapi.json must list them."""
    fuzz(api_schema[path]["POST"], GenerationMode.POSITIVE, [status_code_conformance], examples=2)


class TestFoundByFuzzing:
    """The smallest examples of what fuzzing the API found, kept as plain regression tests."""

    @pytest.mark.parametrize("before", ["nan", "NaN", "inf", "-inf"])
    def test_a_quarantine_page_before_a_non_finite_time_is_refused_as_a_client_error(self, api_url: str,
                                                                                      before: str) -> None:
        """`?before=nan` is a bad request (422), not a store outage (it gave 503 and logged 'redis unavailable')."""
        request = urllib.request.Request(f"{api_url}/v1/admin/quarantine?before={before}",
                                         headers=CREDENTIALS["admin"])
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 422
        assert "before" in json.loads(refused.value.read())["error"]


# Text no JSON-schema generator produces for a number or a string parameter, but any client can send.
HOSTILE_TEXT: Final = ("nan", "NaN", "inf", "-inf", "1e309", "-1", "-0", "9" * 30, "0x1F", "1_000", " ", "\x00",
                       "\u2028", "..", ".", "%2e%2e", "a/../b", "x" * 5000, "😀", "'\"<>")
DOT_SEGMENTS: Final = ("..", ".", "a/../b")


@pytest.mark.parametrize(("method", "path"), [op for op in documented_operations()
                                               if "{" in op[1] or op[1] in ("/v1/admin/quarantine",)],
                         ids=lambda value: str(value))
def test_any_text_in_any_parameter_is_never_a_server_error(api_schema: Any, method: str, path: str) -> None:
    """NaN, infinities, huge and odd numbers, NUL, dot segments, 5 000 characters: a 4xx or an answer, never 5xx."""
    operation = api_schema[path][method]
    parameters = operation.definition.raw.get("parameters", [])
    body: Any = {} if operation.definition.raw.get("requestBody") else NOT_SET
    for parameter in parameters:
        for text in HOSTILE_TEXT:
            if parameter["in"] == "path" and text in DOT_SEGMENTS:
                continue  # the HTTP client resolves these before sending (`/v1/decisions/..` is `/v1/`)
            values = {p["name"]: "x" for p in parameters if p["in"] == "path"}
            query: dict[str, str] = {}
            (values if parameter["in"] == "path" else query)[parameter["name"]] = text
            case = operation.Case(path_parameters=values, query=query, body=body,
                                  media_type="application/json" if body is not NOT_SET else None)
            case.call_and_validate(headers=CREDENTIALS["admin"], checks=CHECKS, timeout=10)


class TestGeneratedSegmentBatches:
    """Generated Segment events, friendly and hostile, through the real `POST /v1/batch`."""

    @fuzz_settings(40)
    @given(st.lists(raw_events(datetime.now(UTC)), min_size=1, max_size=8))
    def test_the_answer_lists_exactly_the_refused_events_and_is_never_a_server_error(
            self, api_url: str, events: list[Generated]) -> None:
        """200 when every event is good; else 400 naming each refused index (or the body, if it is not JSON)."""
        body = b'{"batch": [' + b", ".join(e.raw for e in events) + b"]}"
        request = urllib.request.Request(f"{api_url}/v1/batch", data=body, method="POST", headers={
            "Content-Type": "application/json", **CREDENTIALS["write key"]})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            status, answer = error.code, json.loads(error.read())
        faulty = [i for i, e in enumerate(events) if e.faults]
        if status == 200:
            assert faulty == [], answer
        else:
            assert status == 400, (status, answer)
            if "rejected" in answer:
                assert [r["index"] for r in answer["rejected"]] == faulty
            else:  # the batch itself could not be read: only an event that is not JSON does that
                assert any(e.faults & {"json", "literal", "depth"} for e in events), answer

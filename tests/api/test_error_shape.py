"""One error body and one status table for every route; every response documented in /openapi.json."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from state.settings import Settings
from tests.helpers import RedisServer, free_port

ADMIN = {"Authorization": "Bearer shape-admin"}


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    settings = Settings(redis_url=redis_server.url, admin_token="shape-admin", write_key="wk-shape",
                        api_port=free_port(), rfm_refresh_s=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


class TestOneErrorShape:
    """Whatever fails, and wherever: `{"success": false, "error": "…"}` with the table's status."""

    @pytest.mark.parametrize(("method", "path", "status"), [
        ("GET", "/v1/nowhere", 404),                                   # no such route (Starlette)
        ("DELETE", "/v1/contacts/x", 405),                              # wrong method (Starlette)
        ("GET", "/v1/admin/segments/s/members?limit=0", 422),           # query validation (FastAPI)
        ("GET", "/v1/contacts/ghost", 404),                             # NotFoundError
        ("GET", "/v1/admin/stats", 401),                                # no token
        ("PUT", "/v1/admin/thresholds", 422),                           # InvalidBodyError (not JSON)
    ])
    def test_every_kind_of_error_has_the_same_body(self, client: TestClient, method: str, path: str,
                                                   status: int) -> None:
        headers = ADMIN if path != "/v1/admin/stats" else {}
        response = client.request(method, path, headers=headers, content=b"{not json")
        assert response.status_code == status
        body = response.json()
        assert body["success"] is False and isinstance(body["error"], str) and body["error"]
        assert set(body) == {"success", "error"}

    def test_a_stale_if_match_is_412_in_the_same_shape(self, client: TestClient) -> None:
        assert client.put("/v1/admin/thresholds", json={"warm": 10, "hot": 40}, headers=ADMIN).status_code == 200
        response = client.put("/v1/admin/thresholds", json={"warm": 15, "hot": 40},
                              headers={**ADMIN, "If-Match": '"0"'})
        assert response.status_code == 412
        assert response.json() == {"success": False, "error": 'configuration is at version 1, not "0"'}


class TestDocumentedResponses:
    """/docs shows a schema for every JSON answer of every route."""

    def test_every_json_response_of_every_v1_route_has_a_schema(self, client: TestClient) -> None:
        spec = client.get("/openapi.json").json()
        components = spec["components"]["schemas"]
        missing = []
        for path, operations in spec["paths"].items():
            if not path.startswith("/v1"):
                continue
            for method, operation in operations.items():
                for status, answer in operation["responses"].items():
                    # Any media type (the e-mail pixel is image/gif, its pages text/html); no body for 204 and 3xx.
                    schema = next((media.get("schema") for media in answer.get("content", {}).values()), None)
                    if status != "204" and not status.startswith("3") and not schema:
                        missing.append(f"{method.upper()} {path} {status}")
        assert missing == []
        for name in ("Profile", "PublicDecisions", "ErrorBody", "QuarantinePage", "SegmentsPage", "IngestPartial",
                     "ActiveConfig", "BatchBody"):
            assert name in components

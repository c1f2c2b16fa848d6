"""Admin contact reads and the health check (decisions: `tests/api/decisions/`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.decisions_fast import DecisionsFastPath
from state import keys
from state.decisions import DecisionDoc, encode_doc
from state.profile import Counters, Profile, encode_profile
from state.settings import Settings
from tests.helpers import RedisServer, free_port

WRITE_KEY = "wk-read"
ADMIN = "admin-secret"
SHOP = "https://shop.example"


@pytest.fixture(params=["fastapi", "fast-path"])
def client(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[TestClient]:
    """The app as `attimo api` serves it (decisions fast path in front) and the bare FastAPI app."""
    settings = Settings(redis_url=redis_server.url, write_key=WRITE_KEY, admin_token=ADMIN,
                        api_port=free_port(), allowed_origins=SHOP)
    app = create_app(settings)
    with TestClient(DecisionsFastPath(app) if request.param == "fast-path" else app) as test_client:
        yield test_client


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def profile(redis_client: redis.Redis) -> Profile:
    """A profile as the dataflow writes it, plus an alias from the user id."""
    saved = Profile(contact_id="anon-7", anonymous_ids=["anon-7"], user_id="user-7",
                    email="ada@example.com", score=37.5, temperature="warm",
                    segments=["cart-abandoners"], cart_value=120.0,
                    counters=Counters(events=12, orders=1, revenue=80.0),
                    last_seen=datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    redis_client.set(keys.contact_profile("anon-7"), encode_profile(saved))
    redis_client.set(keys.contact_alias("user-7"), "anon-7")
    return saved


class TestContacts:
    """`GET /v1/contacts/{id}` needs the admin token and returns the stored profile."""

    def test_admin_token_is_required(self, client: TestClient, profile: Profile) -> None:
        """No token, a wrong token or another scheme are all 401."""
        assert client.get("/v1/contacts/anon-7").status_code == 401
        assert client.get("/v1/contacts/anon-7", headers={"Authorization": "Bearer nope"}).status_code == 401
        basic_scheme = {"Authorization": f"Basic {ADMIN}"}
        assert client.get("/v1/contacts/anon-7", headers=basic_scheme).status_code == 401

    def test_stored_profile_is_returned(self, client: TestClient, profile: Profile) -> None:
        """The JSON is the profile the dataflow wrote."""
        response = client.get("/v1/contacts/anon-7", headers=admin())
        assert response.status_code == 200
        body = response.json()
        assert body["contact_id"] == "anon-7"
        assert body["score"] == 37.5 and body["temperature"] == "warm"
        assert body["counters"]["revenue"] == 80.0
        assert body["last_seen"] == "2025-03-01T12:00:00Z"

    def test_profile_is_found_by_an_alias(self, client: TestClient, profile: Profile) -> None:
        """A user id merged into the contact leads to the same profile."""
        response = client.get("/v1/contacts/user-7", headers=admin())
        assert response.status_code == 200 and response.json()["contact_id"] == "anon-7"

    def test_profile_is_found_by_email_whatever_its_case(self, client: TestClient, profile: Profile,
                                                         redis_client: redis.Redis) -> None:
        """The dataflow stores e-mail aliases lower-cased; look-ups by any case find the contact."""
        redis_client.set(keys.contact_alias("ada@example.com"), "anon-7")
        response = client.get("/v1/contacts/Ada@Example.COM", headers=admin())
        assert response.status_code == 200 and response.json()["contact_id"] == "anon-7"

    def test_unknown_contact_is_404(self, client: TestClient) -> None:
        """Nobody by that id."""
        response = client.get("/v1/contacts/nobody", headers=admin())
        assert response.status_code == 404
        assert "nobody" in response.json()["error"]


class TestHealth:
    """`/healthz` reports Redis and the ingest lag; 503 when Redis is down."""

    def test_healthy(self, client: TestClient) -> None:
        """Redis answers and nothing lags."""
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "redis": True, "ingest_lag_s": 0.0}

    def test_redis_down_is_503(self, client: TestClient, redis_server: RedisServer) -> None:
        """A stopped Redis makes the API unhealthy and reads fail with 503, not 500."""
        redis_server.process.terminate()
        redis_server.process.wait(10)
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["redis"] is False
        assert client.get("/v1/contacts/x", headers=admin()).status_code == 503

    def test_openapi_docs_are_served(self, client: TestClient) -> None:
        """The API documents itself at /docs."""
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/v1/batch", "/v1/track", "/v1/decisions/{visitor_id}",
                "/v1/contacts/{contact_id}", "/healthz"} <= set(paths)


class TestIdsWithSlashes:
    """Any id the validator accepts can be read back by id, '/' included (sent as %2F)."""

    def test_a_contact_and_its_decisions_are_readable_by_an_id_with_slashes(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        redis_client.set(keys.contact_profile("shop/user/42"),
                         encode_profile(Profile(contact_id="shop/user/42", user_id="shop/user/42", score=3.0)))
        response = client.get("/v1/contacts/shop%2Fuser%2F42", headers=admin())
        assert response.status_code == 200 and response.json()["contact_id"] == "shop/user/42"
        redis_client.set(keys.decision_doc("shop/anon/42"), encode_doc(DecisionDoc(
            contact_id="shop/anon/42", public={"temperature": "warm"})))
        decisions = client.get("/v1/decisions/shop%2Fanon%2F42", params={"key": WRITE_KEY})
        assert decisions.status_code == 200 and decisions.json()["public"] == {"temperature": "warm"}


class TestDecisionsCors:
    """Only an answer for a valid key may be read by the requesting origin's pages."""

    def test_an_unknown_key_is_not_readable_by_any_origin(self, client: TestClient) -> None:
        """Before, the fast path echoed whatever Origin came with a refused key."""
        response = client.get("/v1/decisions/anon-1", params={"key": "nope"},
                              headers={"Origin": "https://evil.example"})
        assert response.status_code == 401
        assert "access-control-allow-origin" not in response.headers

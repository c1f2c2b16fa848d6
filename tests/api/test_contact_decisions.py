"""`GET /v1/contacts/{id}/decisions`: a contact's decisions for operators, behind the admin token or session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.decisions_fast import DecisionsFastPath
from state import keys
from state.decisions import PublicDecisions
from state.profile import Profile, encode_profile
from state.settings import Settings
from tests.api.decisions.store import SECRET, anonymous_doc, popup, save_doc, shop
from tests.helpers import RedisServer, free_port

ADMIN = "contacts-admin"
WRITE_KEY = "wk-contacts"


@pytest.fixture
def client(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[TestClient]:
    """The API as `attimo api` serves it, over a small shop and one signed-in user with a popup and seeds."""
    shop(redis_client)
    save_doc(redis_client, anonymous_doc("user-7", user_id="user-7"), "anon-7", "ada@example.com")
    redis_client.set(keys.contact_profile("user-7"), encode_profile(Profile(contact_id="user-7", user_id="user-7")))
    settings = Settings(redis_url=redis_server.url, write_key=WRITE_KEY, admin_token=ADMIN, api_port=free_port(),
                        identity_secrets=SECRET, rfm_refresh_s=0)
    with TestClient(DecisionsFastPath(create_app(settings))) as test_client:
        yield test_client


def admin_get(client: TestClient, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {ADMIN}"})


class TestContactDecisions:
    """Operators see what a contact's widgets get, without the checks that guard a visitor's page."""

    def test_the_admin_token_is_required(self, client: TestClient) -> None:
        """No token, a wrong one, or the write key: 401, and nothing of the contact in the answer."""
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {WRITE_KEY}"}):
            response = client.get("/v1/contacts/user-7/decisions", headers=headers)
            assert response.status_code == 401
            assert "STAY10" not in response.text

    def test_a_signed_in_users_decisions_are_answered_without_a_signature(self, client: TestClient) -> None:
        """The public route refuses the user without `sig`; the admin route answers its popups and strips."""
        assert client.get("/v1/decisions/user-7", params={"key": WRITE_KEY}).status_code == 401
        response = admin_get(client, "/v1/contacts/user-7/decisions")
        assert response.status_code == 200
        body = msgspec.json.decode(response.content, type=PublicDecisions)
        assert body.popups == [popup()]
        assert body.recommendations["cross_sell"][0].id == "x1"
        assert body.recommendations["personal"][0].id == "n1"

    def test_any_id_of_the_contact_reads_the_same_decisions(self, client: TestClient) -> None:
        """Its anonymous id and its e-mail in another case lead to the same document."""
        by_user = admin_get(client, "/v1/contacts/user-7/decisions").json()
        assert admin_get(client, "/v1/contacts/anon-7/decisions").json() == by_user
        assert admin_get(client, "/v1/contacts/Ada@Example.com/decisions").json() == by_user

    def test_an_unknown_contact_gets_what_a_new_visitor_gets(self, client: TestClient) -> None:
        """No popups, the trending strip: the same as the public answer for an id with no state."""
        body = admin_get(client, "/v1/contacts/nobody/decisions").json()
        assert body["popups"] == [] and [c["id"] for c in body["recommendations"]["trending"]] == ["t1", "t2", "t3"]

    def test_the_profile_route_still_answers_its_own_paths(self, client: TestClient) -> None:
        """The decisions route takes only ids ending in `/decisions`; the profile stays where it was."""
        response = admin_get(client, "/v1/contacts/user-7")
        assert response.status_code == 200 and response.json()["contact_id"] == "user-7"

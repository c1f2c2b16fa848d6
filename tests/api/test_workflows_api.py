"""Admin API for workflows and recipes: versions, validation, enable/disable, stats, manual entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from state import keys
from state.config import decode_config
from state.events import WorkflowEntry
from state.profile import Profile, encode_profile
from state.recipes import RECIPES
from state.settings import Settings
from state.streams import ENTRY_FIELD, decode_entry
from tests.helpers import RedisServer, free_port

ADMIN = {"Authorization": "Bearer wf-admin"}
SHARDS = 2
WELCOME: dict[str, Any] = {
    "trigger": {"kind": "event", "match": {"event": "Signed Up"}},
    "steps": [{"kind": "webhook", "id": "hello", "endpoint": "esp", "next": "wait"},
              {"kind": "delay", "id": "wait", "seconds": 60, "next": "tips"},
              {"kind": "webhook", "id": "tips", "endpoint": "esp"}],
    "goal": {"event": {"event": "Order Completed"}},
}


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    settings = Settings(redis_url=redis_server.url, admin_token="wf-admin", write_key="wk-wf", api_port=free_port(),
                        stream_shards=SHARDS, rfm_refresh_s=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def config(client: TestClient) -> Any:
    return decode_config(client.get("/v1/admin/config", headers=ADMIN).content)


class TestWorkflowVersions:
    """Each change counts the workflow's version; the previous one is kept for contacts inside it."""

    def test_create_then_change_keeps_the_old_version_retired(self, client: TestClient) -> None:
        created = client.put("/v1/admin/workflows/welcome", json=WELCOME, headers=ADMIN)
        assert created.status_code == 201 and created.json()["workflow"]["version"] == 1
        changed = client.put("/v1/admin/workflows/welcome", json={**WELCOME, "name": "Welcome v2"}, headers=ADMIN)
        assert changed.status_code == 200 and changed.json()["workflow"]["version"] == 2
        published = config(client)
        assert [(w.id, w.version) for w in published.workflows] == [("welcome", 2)]
        assert [(w.id, w.version) for w in published.retired_workflows] == [("welcome", 1)]
        assert client.get("/v1/admin/workflows/welcome", headers=ADMIN).json()["name"] == "Welcome v2"

    def test_disable_keeps_the_version_and_delete_retires_it(self, client: TestClient) -> None:
        client.put("/v1/admin/workflows/welcome", json=WELCOME, headers=ADMIN)
        disabled = client.post("/v1/admin/workflows/welcome/disable", headers=ADMIN).json()["workflow"]
        assert disabled["enabled"] is False and disabled["version"] == 1
        assert client.delete("/v1/admin/workflows/welcome", headers=ADMIN).json()["deleted"] == "welcome"
        published = config(client)
        assert published.workflows == [] and [w.id for w in published.retired_workflows] == ["welcome"]
        assert client.get("/v1/admin/workflows/welcome", headers=ADMIN).status_code == 404

    @pytest.mark.parametrize(("change", "message"), [
        ({"steps": [{"kind": "webhook", "id": "a", "endpoint": "esp", "next": "ghost"}]}, "unknown step 'ghost'"),
        ({"steps": [{"kind": "split", "id": "s", "arms": [{"name": "a", "percent": 60}]}]}, "add up to 100"),
        ({"steps": [{"kind": "delay", "id": "d", "next": "d", "seconds": 1}]}, None),
        ({"steps": [{"kind": "tag", "id": "a", "add": ["x"], "next": "b"},
                    {"kind": "tag", "id": "b", "next": "a"}]}, "loop without a delay or wait: a → b → a"),
        ({"trigger": {"kind": "segment", "segment": "ghost"}}, "unknown segment 'ghost'"),
        ({"steps": [{"kind": "email", "id": "e", "subject": "Hi {{#cart}}", "text": "x"}]}, "subject"),
    ])
    def test_a_workflow_that_cannot_run_is_422(self, client: TestClient, change: dict[str, Any],
                                               message: str | None) -> None:
        response = client.put("/v1/admin/workflows/bad", json={**WELCOME, **change}, headers=ADMIN)
        if message is None:  # a delay looping on itself waits each time round: allowed
            assert response.status_code == 201
            return
        assert response.status_code == 422 and message in response.json()["error"], response.text


class TestStatsAndManualEntry:
    """Stats sum the dataflow's per-shard totals; manual entry appends one internal event per contact."""

    def test_stats_are_summed_over_shards(self, client: TestClient, redis_client: redis.Redis) -> None:
        client.put("/v1/admin/workflows/welcome", json=WELCOME, headers=ADMIN)
        redis_client.hset(keys.workflow_stats("welcome"), mapping={
            "visitors:3:entered": 2, "contacts:7:entered": 5, "contacts:7:step:hello": 4})
        body = client.get("/v1/admin/workflows/welcome/stats", headers=ADMIN).json()
        assert body == {"workflow": "welcome", "counters": {"entered": 7, "step:hello": 4}}

    def test_manual_entry_addresses_each_contact_as_the_dataflow_keys_it(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        client.put("/v1/admin/workflows/welcome", json=WELCOME, headers=ADMIN)
        redis_client.set(keys.contact_profile("anon-1"), encode_profile(Profile(contact_id="anon-1")))
        response = client.post("/v1/admin/workflows/welcome/enter", json={"contacts": ["anon-1", "crm-9"]},
                               headers=ADMIN)
        assert response.status_code == 202 and response.json() == {"accepted": 2}
        entries = [e for shard in range(SHARDS) for _, f in redis_client.xrange(keys.event_stream(shard))
                   if ENTRY_FIELD in f for e in decode_entry(f[ENTRY_FIELD])]
        assert all(isinstance(e, WorkflowEntry) and e.workflow == "welcome" for e in entries)
        assert sorted((e.anonymous_id or "", e.user_id or "") for e in entries) == [("", "crm-9"), ("anon-1", "")]
        assert client.post("/v1/admin/workflows/ghost/enter", json={"contacts": ["x"]},
                           headers=ADMIN).status_code == 404


class TestRecipes:
    """Every recipe imports as a valid workflow, with its parameters overridable."""

    def test_each_recipe_imports(self, client: TestClient) -> None:
        listed = client.get("/v1/admin/recipes", headers=ADMIN).json()
        assert listed["count"] == len(RECIPES) >= 13
        for recipe in listed["data"]:
            response = client.post(f"/v1/admin/recipes/{recipe['name']}/import", json={"endpoint": "esp"},
                                   headers=ADMIN)
            assert response.status_code == 201, response.text
        assert len(config(client).workflows) == len(RECIPES)

    def test_parameters_override_the_defaults_and_unknown_ones_are_422(self, client: TestClient) -> None:
        response = client.post("/v1/admin/recipes/abandoned-cart/import", headers=ADMIN, json={
            "endpoint": "esp", "workflow_id": "cart-fast", "parameters": {"idle": 5}})
        assert response.json()["workflow"]["trigger"] == {"kind": "cart_idle", "idle_s": 5.0}
        bad = client.post("/v1/admin/recipes/abandoned-cart/import", headers=ADMIN,
                          json={"endpoint": "esp", "parameters": {"nope": 1}})
        assert bad.status_code == 422 and "no parameter 'nope'" in bad.json()["error"]
        assert client.post("/v1/admin/recipes/ghost/import", json={"endpoint": "esp"},
                           headers=ADMIN).status_code == 404

    def test_the_messaging_policy_is_configurable(self, client: TestClient) -> None:
        policy = {"caps": {"email": 3600}, "quiet_hours": None, "default_timezone": "Europe/Rome"}
        assert client.put("/v1/admin/messaging", json=policy, headers=ADMIN).status_code == 200
        assert config(client).messaging.default_timezone == "Europe/Rome"
        bad = client.put("/v1/admin/messaging", json={**policy, "default_timezone": "Mars/Olympus"}, headers=ADMIN)
        assert bad.status_code == 422 and "unknown time zone" in bad.json()["error"]

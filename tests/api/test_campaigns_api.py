"""Admin API for popup campaigns: versions, validation, enable/disable, delete, stats per arm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.campaign_models import CampaignBody, campaign_of
from state import keys
from state.config import ActiveConfig, decode_config
from state.config_rules import config_problem
from state.decisions import decode_doc
from state.settings import Settings
from tests.helpers import RedisServer, free_port

ADMIN = {"Authorization": "Bearer cp-admin"}
PROMO: dict[str, Any] = {
    "variants": [{"id": "a", "content": {"title": "10 % off", "cta_label": "Shop", "cta_url": "https://s.example/"}},
                 {"id": "b", "content": {"title": "Free shipping"}, "layout": "bar"}],
    "triggers": [{"kind": "exit_intent"}, {"kind": "scroll", "percent": 50}],
    "when": {"kind": "all", "of": [{"kind": "utm_source", "values": ["newsletter"]},
                                   {"kind": "cart", "min_value": 50}, {"kind": "returning", "value": False}]},
    "holdout_percent": 10,
    "frequency": {"once_per_session": True, "cooldown_after_close_s": 3600},
    "public": ["temperature"],
}


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    settings = Settings(redis_url=redis_server.url, admin_token="cp-admin", write_key="wk-cp", api_port=free_port(),
                        stream_shards=2, rfm_refresh_s=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def config(client: TestClient) -> Any:
    return decode_config(client.get("/v1/admin/config", headers=ADMIN).content)


class TestCampaignVersions:
    """Each change counts the campaign's version and publishes a configuration version."""

    def test_create_change_list_and_get(self, client: TestClient) -> None:
        created = client.put("/v1/admin/campaigns/promo", json=PROMO, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.json()["campaign"]["version"] == 1 and created.json()["created"] is True
        changed = client.put("/v1/admin/campaigns/promo", json={**PROMO, "name": "Promo v2"}, headers=ADMIN)
        assert changed.status_code == 200 and changed.json()["campaign"]["version"] == 2
        assert changed.json()["version"] > created.json()["version"]
        listed = client.get("/v1/admin/campaigns", headers=ADMIN)
        assert listed.json()["count"] == 1 and listed.headers["etag"] == f'"{changed.json()["version"]}"'
        assert client.get("/v1/admin/campaigns/promo", headers=ADMIN).json()["name"] == "Promo v2"
        assert [c.id for c in config(client).campaigns] == ["promo"]

    def test_disable_enable_and_delete(self, client: TestClient) -> None:
        client.put("/v1/admin/campaigns/promo", json=PROMO, headers=ADMIN)
        disabled = client.post("/v1/admin/campaigns/promo/disable", headers=ADMIN).json()["campaign"]
        assert disabled["enabled"] is False and disabled["version"] == 1
        assert client.post("/v1/admin/campaigns/promo/enable", headers=ADMIN).json()["campaign"]["enabled"] is True
        assert client.delete("/v1/admin/campaigns/promo", headers=ADMIN).json()["deleted"] == "promo"
        assert config(client).campaigns == []
        for call in (client.get, client.delete):
            assert call("/v1/admin/campaigns/promo", headers=ADMIN).status_code == 404
        assert client.post("/v1/admin/campaigns/promo/enable", headers=ADMIN).status_code == 404

    def test_admin_token_is_required(self, client: TestClient) -> None:
        assert client.get("/v1/admin/campaigns").status_code == 401
        assert client.put("/v1/admin/campaigns/promo", json=PROMO).status_code == 401


class TestRefusals:
    """A campaign that cannot run is refused with a 422 naming the problem; nothing is published."""

    @pytest.mark.parametrize(("change", "message"), [
        ({"variants": []}, "length >= 1"),
        ({"variants": [PROMO["variants"][0], PROMO["variants"][0]]}, "variant ids must be unique"),
        ({"variants": [{"id": "holdout", "content": {"title": "x"}}]}, "holdout"),
        ({"variants": [{"id": "a:b", "content": {"title": "x"}}]}, "variants[0].id"),
        ({"variants": [{"id": "a", "content": {"title": "x", "cta_url": "javascript:alert(1)"}}]}, "cta_url"),
        ({"variants": [{"id": "a", "content": {"title": "x", "image": "data:image/png;base64,AAA"}}]}, "image"),
        ({"variants": [{"id": "a", "content": {"title": "x" * 201}}]}, "title"),
        ({"triggers": []}, "triggers"),
        ({"triggers": [{"kind": "teleport"}]}, "kind"),
        ({"holdout_percent": 95}, "holdout_percent"),
        ({"when": {"kind": "segment", "segment": "ghost"}}, "unknown segment 'ghost'"),
        ({"when": {"kind": "workflow", "workflow": "ghost"}}, "unknown workflow 'ghost'"),
        ({"public": ["email"]}, "public"),
        ({"public": ["stage", "stage"]}, "public fields must be unique"),
        ({"priority": 10**6}, "priority"),
        ({"surprise": 1}, "unknown field"),
        ({"id": "other"}, "differs from the path"),
    ])
    def test_a_campaign_that_cannot_run_is_422(self, client: TestClient, change: dict[str, Any],
                                               message: str) -> None:
        response = client.put("/v1/admin/campaigns/bad", json={**PROMO, **change}, headers=ADMIN)
        assert response.status_code == 422 and message in response.json()["error"], response.text
        assert config(client).campaigns == []

    def test_a_condition_nested_too_deep_is_422(self, client: TestClient) -> None:
        when: dict[str, Any] = {"kind": "returning"}
        for _ in range(40):
            when = {"kind": "not", "of": when}
        response = client.put("/v1/admin/campaigns/deep", json={**PROMO, "when": when}, headers=ADMIN)
        assert response.status_code == 422 and "levels deep" in response.json()["error"]

    def test_a_huge_configuration_is_refused_whole(self, client: TestClient) -> None:
        many = [{"id": f"v{i}", "content": {"title": "x"}} for i in range(7)]
        response = client.put("/v1/admin/campaigns/big", json={**PROMO, "variants": many}, headers=ADMIN)
        assert response.status_code == 422 and "variants" in response.json()["error"]
        for i in range(50):
            assert client.put(f"/v1/admin/campaigns/c{i}", json=PROMO, headers=ADMIN).status_code == 201
        response = client.put("/v1/admin/campaigns/c50", json=PROMO, headers=ADMIN)
        assert response.status_code == 422 and "at most 50 campaigns" in response.json()["error"]

    def test_a_segment_or_workflow_a_campaign_targets_cannot_be_deleted(self, client: TestClient) -> None:
        client.put("/v1/admin/segments/vip", json={"when": {"kind": "tag", "tag": "vip"}}, headers=ADMIN)
        client.put("/v1/admin/campaigns/promo", json={**PROMO, "when": {"kind": "segment", "segment": "vip"}},
                   headers=ADMIN)
        response = client.delete("/v1/admin/segments/vip", headers=ADMIN)
        assert response.status_code == 422 and "campaign 'promo'" in response.json()["error"]


class TestStats:
    """Stats sum the dataflow's per-shard totals per arm; rates and the chance to beat the holdout follow."""

    def test_counts_rates_and_the_chance_to_beat_the_holdout(self, client: TestClient,
                                                             redis_client: redis.Redis) -> None:
        client.put("/v1/admin/campaigns/promo", json=PROMO, headers=ADMIN)
        redis_client.hset(keys.campaign_stats("promo"), mapping={
            "visitors:1:impressions:a": 150, "contacts:4:impressions:a": 50, "visitors:1:contacts:a": 100,
            "visitors:1:clicks:a": 20, "visitors:1:closes:a": 30, "visitors:1:conversions:a": 30,
            "visitors:2:contacts:b": 100, "visitors:2:conversions:b": 10,
            "visitors:3:contacts:holdout": 100, "visitors:3:conversions:holdout": 10, "nonsense": 3})
        body = client.get("/v1/admin/campaigns/promo/stats", headers=ADMIN).json()
        arms = {arm["arm"]: arm for arm in body["arms"]}
        assert list(arms) == ["a", "b", "holdout"]
        assert {k: arms["a"][k] for k in ("impressions", "clicks", "closes", "contacts", "conversions")} == {
            "impressions": 200, "clicks": 20, "closes": 30, "contacts": 100, "conversions": 30}
        assert arms["a"]["conversion_rate"] == 0.3 and arms["a"]["click_rate"] == 0.1
        assert arms["a"]["beats_holdout"] > 0.999 and 0.45 < arms["b"]["beats_holdout"] < 0.55
        assert arms["holdout"]["beats_holdout"] is None

    def test_a_deleted_campaign_keeps_its_stats_and_an_unknown_one_is_404(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        client.put("/v1/admin/campaigns/promo", json=PROMO, headers=ADMIN)
        redis_client.hset(keys.campaign_stats("promo"), "visitors:1:impressions:a", 3)
        client.delete("/v1/admin/campaigns/promo", headers=ADMIN)
        body = client.get("/v1/admin/campaigns/promo/stats", headers=ADMIN).json()
        assert [(a["arm"], a["impressions"]) for a in body["arms"]] == [("a", 3)]
        assert client.get("/v1/admin/campaigns/ghost/stats", headers=ADMIN).status_code == 404


class TestTheProtocolDocument:
    """The campaign and the decision document `docs/protocol.md` shows are ones the code accepts."""

    def test_the_examples_are_valid(self) -> None:
        section = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text().split(
            "## 11. Popups", 1)[1]
        examples = [part.split("```", 1)[0] for part in section.split("```json")[1:]]
        body = msgspec.json.decode(examples[0].encode(), type=CampaignBody)
        assert config_problem(ActiveConfig(version=1, campaigns=[campaign_of("welcome-10", body, 1)])) is None
        doc = decode_doc(examples[1].encode())
        assert doc.popups[0].campaign == "welcome-10" and doc.seeds.bought == ["p-9"]

"""Admin configuration API: auth, versioned publishing, validation with precise messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import msgspec
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from state import keys
from state.config import (
    AbsenceRule,
    ActiveConfig,
    ScoreGroup,
    ScoringRule,
    StageRule,
    TagRule,
    Thresholds,
    decode_config,
)
from state.config_store import decode_control
from state.settings import Settings
from state.streams import CONTROL_FIELD
from tests.helpers import RedisServer

TOKEN = "t"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SHARDS = 2


def admin_app(redis_url: str) -> FastAPI:
    """The real API app, as `attimo api` builds it, with a known token and two stream shards."""
    return create_app(Settings(redis_url=redis_url, admin_token=TOKEN, write_key="wk-admin", stream_shards=SHARDS,
                               contact_shards=8, rfm_refresh_s=0))


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    with TestClient(admin_app(redis_server.url)) as test_client:
        yield test_client


def rule(rule_id: str = "pricing", points: Any = 10, **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "match": {"event": "page", "where": [{"name": "name", "value": "Pricing"}]},
            "points": points, **extra}


def config(client: TestClient) -> ActiveConfig:
    response = client.get("/v1/admin/config", headers=ADMIN)
    assert response.status_code == 200
    return decode_config(response.content)


SHOES = {"kind": "count", "dimension": "category", "value": "shoes", "event": "Product Viewed",
         "window_s": 604800, "op": "gte", "n": 3}


class TestAuth:
    """Every admin route needs the bearer token."""

    @pytest.mark.parametrize(("method", "path"), [
        ("GET", "/v1/admin/config"),
        ("GET", "/v1/admin/scoring/rules"), ("PUT", "/v1/admin/scoring/rules"),
        ("PUT", "/v1/admin/scoring/absence-rules"), ("PUT", "/v1/admin/scoring/groups"),
        ("PUT", "/v1/admin/thresholds"), ("PUT", "/v1/admin/stages"), ("PUT", "/v1/admin/tag-rules"),
        ("GET", "/v1/admin/segments"), ("PUT", "/v1/admin/segments/x"), ("DELETE", "/v1/admin/segments/x"),
        ("GET", "/v1/admin/segments/x/members"), ("GET", "/v1/admin/segments/x/backfill"),
        ("GET", "/v1/admin/contacts/x/segments"),
        ("POST", "/v1/admin/contacts/x/tags"), ("POST", "/v1/admin/lists/l/members"),
    ])
    def test_no_or_wrong_token_is_401(self, client: TestClient, method: str, path: str) -> None:
        """Missing and wrong tokens are refused before the body is looked at."""
        assert client.request(method, path, content=b"[]").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.request(method, path, content=b"[]", headers=wrong).status_code == 401


class TestPublishing:
    """A PUT publishes a new version that GET /config shows, announced on every stream shard."""

    def test_defaults_before_anything_is_published(self, client: TestClient) -> None:
        """Version 0: the defaults of `ActiveConfig`, one default score group."""
        current = config(client)
        assert current == ActiveConfig()
        assert current.version == 0
        assert list(current.score_groups) == ["default"]

    def test_put_rules_then_config_shows_the_next_version(self, client: TestClient,
                                                          redis_client: redis.Redis) -> None:
        """Version + 1, the rule in the config, and a control entry on every shard."""
        before = config(client).version
        response = client.put("/v1/admin/scoring/rules", json=[rule()], headers=ADMIN)
        assert response.status_code == 200
        body = response.json()
        assert body["version"] == before + 1
        assert body["scoring_rules"][0]["id"] == "pricing"
        assert response.headers["etag"] == f'"{before + 1}"'
        current = config(client)
        assert current.version == before + 1
        assert [r.id for r in current.scoring_rules] == ["pricing"]
        assert current.scoring_rules[0].points == 10.0
        for shard in range(SHARDS):
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]",
                           redis_client.xrange(keys.event_stream(shard)))
            controls = [fields[CONTROL_FIELD] for _, fields in entries if CONTROL_FIELD in fields]
            assert [decode_control(c).version for c in controls] == [before + 1]

    def test_each_put_replaces_only_its_part(self, client: TestClient) -> None:
        """Rules survive a thresholds change; versions count up by one per change."""
        client.put("/v1/admin/scoring/rules", json=[rule()], headers=ADMIN)
        response = client.put("/v1/admin/thresholds", json={"warm": 10, "hot": 30}, headers=ADMIN)
        assert response.json()["version"] == 2
        current = config(client)
        assert [r.id for r in current.scoring_rules] == ["pricing"]
        assert (current.thresholds.warm, current.thresholds.hot) == (10, 30)

    @pytest.mark.parametrize(("path", "kind", "body"), [
        ("/v1/admin/scoring/rules", list[ScoringRule], [rule(), rule("demo", 20, mode="once")]),
        ("/v1/admin/scoring/absence-rules", list[AbsenceRule], [{
            "id": "ignored-email", "after": {"event": "Email Delivered"}, "expect": {"event": "Email Opened"},
            "within_s": 259200, "points": -2, "correlate_on": "email_id"}]),
        ("/v1/admin/scoring/groups", dict[str, ScoreGroup],
         {"default": {"half_life_s": 86400.0}, "email": {"half_life_s": 0.0}}),
        ("/v1/admin/thresholds", Thresholds, {"warm": 5.0, "hot": 15.0}),
        ("/v1/admin/stages", list[StageRule],
         [{"stage": "decision", "when": {"kind": "cart", "min_value": 1}}]),
        ("/v1/admin/tag-rules", list[TagRule], [{"match": {"event": "Form Submitted", "where": [
            {"name": "province", "op": "eq", "value": "roma"}]}, "tag": "province:roma"}]),
    ])
    def test_get_returns_what_put_stored(self, client: TestClient, path: str, kind: Any, body: Any) -> None:
        """Each part round-trips: GET shows the stored part, and a GET body can be PUT back."""
        assert client.put(path, json=body, headers=ADMIN).status_code == 200
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 200
        assert response.headers["etag"] == '"1"'
        assert response.json() == msgspec.to_builtins(msgspec.convert(body, kind))
        assert client.put(path, content=response.content, headers=ADMIN).status_code == 200
        assert client.get(path, headers=ADMIN).json() == response.json()

    def test_stale_if_match_is_412(self, client: TestClient) -> None:
        """If-Match with an older version is refused; the current one is accepted."""
        client.put("/v1/admin/scoring/rules", json=[rule()], headers=ADMIN)
        stale = client.put("/v1/admin/scoring/rules", json=[], headers={**ADMIN, "If-Match": '"0"'})
        assert stale.status_code == 412
        assert "version 1" in stale.json()["error"]
        fresh = client.put("/v1/admin/scoring/rules", json=[], headers={**ADMIN, "If-Match": '"1"'})
        assert fresh.status_code == 200 and fresh.json()["version"] == 2


class TestValidation:
    """Bad bodies get 422 with a message naming the field; nothing is published."""

    @pytest.mark.parametrize(("path", "body", "message"), [
        ("/v1/admin/scoring/rules", [rule(points="ten")], "Expected `float`, got `str` - at `$[0].points`"),
        ("/v1/admin/scoring/rules", [rule(colour="red")], "Object contains unknown field `colour`"),
        ("/v1/admin/scoring/rules", [rule(mode="sometimes")], "at `$[0].mode`"),
        ("/v1/admin/scoring/rules", [rule("bad id!")], "at `$[0].id`"),
        ("/v1/admin/scoring/rules", [rule(), rule()], "scoring rule 'pricing' is defined twice"),
        ("/v1/admin/scoring/rules", [rule(group="vip")], "uses unknown score group 'vip'"),
        ("/v1/admin/scoring/groups", {"default": {"half_life_s": -1}}, "at `$[...].half_life_s`"),
        ("/v1/admin/thresholds", {"warm": 60, "hot": 50}, "warm (60.0) is above hot (50.0)"),
        ("/v1/admin/stages", [{"stage": "x", "when": {"kind": "stage", "values": ["decision"]}}],
         "stage rule 'x' tests the stage itself"),
        ("/v1/admin/stages", [{"stage": "x", "when": {"kind": "segment", "segment": "ghost"}}],
         "stage rule 'x' refers to unknown segment 'ghost'"),
        ("/v1/admin/tag-rules", [{"match": {"event": "x"}}],
         "Object missing required field `tag` - at `$[0]`"),
        ("/v1/admin/stages", [{"stage": "x", "when": {"kind": "bogus"}}], "Invalid value 'bogus'"),
    ])
    def test_invalid_body_is_422_naming_the_field(self, client: TestClient, path: str, body: Any,
                                                   message: str) -> None:
        """msgspec's message (with its JSON path) or the cross-part rule that failed."""
        response = client.put(path, json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]
        assert config(client).version == 0

    def test_conditions_nested_deeper_than_evaluation_allows_are_422(self, client: TestClient) -> None:
        """The dataflow evaluates conditions recursively: 33 levels are refused, past the decoder's limit too."""
        condition: dict[str, Any] = {"kind": "tag", "tag": "vip"}
        for _ in range(32):
            condition = {"kind": "not", "of": condition}
        response = client.put("/v1/admin/segments/deep", json={"when": condition}, headers=ADMIN)
        assert response.status_code == 422
        assert "segment 'deep' nests 33 levels deep; at most 32 allowed" in response.json()["error"]
        very_deep = b'{"when": ' + b'{"kind": "not", "of": ' * 2000 + b'{"kind": "tag", "tag": "x"}' + b"}" * 2001
        response = client.put("/v1/admin/segments/deeper", content=very_deep, headers=ADMIN)
        assert response.status_code == 422 and "nested too deeply" in response.json()["error"]
        assert config(client).version == 0

    def test_a_stage_rule_may_use_a_segment_unless_that_segment_tests_the_stage(self, client: TestClient) -> None:
        """Segments a stage rule needs are evaluated before the stage, so they cannot read it."""
        plain = {"when": {"kind": "total", "counter": "revenue", "op": "gte", "value": 100}}
        deciders = {"when": {"kind": "stage", "values": ["decision"]}}
        assert client.put("/v1/admin/segments/big", json=plain, headers=ADMIN).status_code == 201
        assert client.put("/v1/admin/segments/deciders", json=deciders, headers=ADMIN).status_code == 201
        uses_big = [{"stage": "vip", "when": {"kind": "segment", "segment": "big"}}]
        assert client.put("/v1/admin/stages", json=uses_big, headers=ADMIN).status_code == 200
        uses_deciders = [{"stage": "x", "when": {"kind": "segment", "segment": "deciders"}}]
        response = client.put("/v1/admin/stages", json=uses_deciders, headers=ADMIN)
        assert response.status_code == 422
        assert "stage rule 'x' needs segment 'deciders', which tests the stage" in response.json()["error"]

    def test_a_total_naming_an_unknown_figure_is_422(self, client: TestClient) -> None:
        """A typo in `Total.counter` is refused, not compared as 0 forever."""
        typo = {"when": {"kind": "total", "counter": "ordres", "op": "gte", "value": 1}}
        response = client.put("/v1/admin/segments/buyers", json=typo, headers=ADMIN)
        assert response.status_code == 422 and "unknown figure 'ordres'" in response.json()["error"]

    def test_not_json_is_422(self, client: TestClient) -> None:
        """A body that is not JSON says so."""
        response = client.put("/v1/admin/thresholds", content=b"{warm", headers=ADMIN)
        assert response.status_code == 422
        assert "JSON" in response.json()["error"]

    def test_groups_then_rules_in_that_group(self, client: TestClient) -> None:
        """A rule may use a group once the group exists; removing the group is then refused."""
        groups = {"default": {"half_life_s": 100.0}, "email": {"half_life_s": 10.0}}
        assert client.put("/v1/admin/scoring/groups", json=groups, headers=ADMIN).status_code == 200
        in_email = client.put("/v1/admin/scoring/rules", json=[rule(group="email")], headers=ADMIN)
        assert in_email.status_code == 200
        only_default = {"default": {"half_life_s": 100.0}}
        response = client.put("/v1/admin/scoring/groups", json=only_default, headers=ADMIN)
        assert response.status_code == 422
        assert "unknown score group 'email'" in response.json()["error"]


class TestSegments:
    """Segments are created, replaced and deleted one by one; references must resolve."""

    def test_create_replace_list_and_delete(self, client: TestClient) -> None:
        """201 on create, 200 on replace, listed, then deleted."""
        created = client.put("/v1/admin/segments/shoe-fans", json={"when": SHOES, "name": "Shoe fans"},
                             headers=ADMIN)
        assert created.status_code == 201
        assert created.json()["created"] is True and created.json()["version"] == 1
        assert created.json()["segment"]["id"] == "shoe-fans"
        replaced = client.put("/v1/admin/segments/shoe-fans",
                              json={"id": "shoe-fans", "when": {**SHOES, "n": 5}}, headers=ADMIN)
        assert replaced.status_code == 200 and replaced.json()["created"] is False
        listing = client.get("/v1/admin/segments", headers=ADMIN).json()
        assert listing["count"] == 1 and listing["data"][0]["when"]["n"] == 5
        assert client.get("/v1/admin/segments/shoe-fans", headers=ADMIN).json()["name"] == ""
        deleted = client.delete("/v1/admin/segments/shoe-fans", headers=ADMIN)
        assert deleted.status_code == 200 and deleted.json() == {"version": 3, "deleted": "shoe-fans"}
        assert config(client).segments == []
        assert client.delete("/v1/admin/segments/shoe-fans", headers=ADMIN).status_code == 404
        assert client.get("/v1/admin/segments/shoe-fans", headers=ADMIN).status_code == 404

    def test_cycle_is_422(self, client: TestClient) -> None:
        """a → b is fine; then b → a closes a cycle and is refused with its path."""
        b_is_tagged = {"when": {"kind": "tag", "tag": "x"}}
        assert client.put("/v1/admin/segments/b", json=b_is_tagged, headers=ADMIN).status_code == 201
        a_needs_b = {"when": {"kind": "all", "of": [{"kind": "segment", "segment": "b"}]}}
        assert client.put("/v1/admin/segments/a", json=a_needs_b, headers=ADMIN).status_code == 201
        b_needs_a = {"when": {"kind": "not", "of": {"kind": "segment", "segment": "a"}}}
        response = client.put("/v1/admin/segments/b", json=b_needs_a, headers=ADMIN)
        assert response.status_code == 422
        assert response.json()["error"] == "segment cycle: b → a → b"
        self_ref = client.put("/v1/admin/segments/c", json={"when": {"kind": "segment", "segment": "c"}},
                              headers=ADMIN)
        assert self_ref.json()["error"] == "segment cycle: c → c"
        assert config(client).version == 2

    def test_unknown_reference_and_delete_of_a_used_segment_are_422(self, client: TestClient) -> None:
        """A reference must exist, and a segment in use cannot be deleted."""
        ghost = client.put("/v1/admin/segments/a", json={"when": {"kind": "segment", "segment": "ghost"}},
                           headers=ADMIN)
        assert ghost.status_code == 422
        assert ghost.json()["error"] == "segment 'a' refers to unknown segment 'ghost'"
        client.put("/v1/admin/segments/b", json={"when": SHOES}, headers=ADMIN)
        client.put("/v1/admin/segments/a", json={"when": {"kind": "segment", "segment": "b"}}, headers=ADMIN)
        in_use = client.delete("/v1/admin/segments/b", headers=ADMIN)
        assert in_use.status_code == 422 and in_use.json()["error"] == "segment 'b' is used by a"

    @pytest.mark.parametrize(("path", "body", "message"), [
        ("/v1/admin/segments/a", {"id": "b", "when": SHOES}, "body id 'b' differs from the path's 'a'"),
        ("/v1/admin/segments/a%20b", {"when": SHOES}, "segment id 'a b'"),
        ("/v1/admin/segments/a", {"when": {**SHOES, "n": "three"}}, "at `$.when.n`"),
        ("/v1/admin/segments/a", {"name": "no condition"}, "missing required field `when`"),
    ])
    def test_bad_segment_bodies_are_422(self, client: TestClient, path: str, body: Any, message: str) -> None:
        """Id mismatch, bad id, bad condition, missing condition."""
        response = client.put(path, json=body, headers=ADMIN)
        assert response.status_code == 422
        assert message in response.json()["error"]

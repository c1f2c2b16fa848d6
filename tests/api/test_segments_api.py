"""Segment members, a contact's segments, backfill progress, and tag / list changes as events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from state import keys
from state.events import InternalEvent, ListChanged, TagsChanged, routing_id
from state.profile import Profile, encode_profile
from state.shards import shard_of
from state.streams import ENTRY_FIELD, decode_entry
from tests.api.test_admin_config import ADMIN, SHARDS, admin_app
from tests.helpers import RedisServer

SHOES = {"kind": "count", "dimension": "category", "value": "shoes", "event": "Product Viewed",
         "window_s": 604800, "op": "gte", "n": 3}
T0 = 1_795_435_200.0


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    with TestClient(admin_app(redis_server.url)) as test_client:
        yield test_client


@pytest.fixture
def shoe_fans(client: TestClient, redis_client: redis.Redis) -> list[str]:
    """A published segment whose sorted set holds 25 members, some entering at the same moment."""
    assert client.put("/v1/admin/segments/shoe-fans", json={"when": SHOES}, headers=ADMIN).status_code == 201
    members = {f"c{i:02d}": T0 + (i // 3) for i in range(25)}  # ties of three
    redis_client.zadd(keys.segment_members("shoe-fans"), members)
    return sorted(members, key=lambda m: (members[m], m))


def stream_events(redis_client: redis.Redis, shard: int) -> list[InternalEvent]:
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", redis_client.xrange(keys.event_stream(shard)))
    events = [e for _, fields in entries if ENTRY_FIELD in fields for e in decode_entry(fields[ENTRY_FIELD])]
    assert all(isinstance(e, TagsChanged | ListChanged) for e in events)
    return cast("list[InternalEvent]", events)


def known(contact_id: str) -> bytes:
    return encode_profile(Profile(contact_id=contact_id, user_id=contact_id))


def anonymous(contact_id: str) -> bytes:
    return encode_profile(Profile(contact_id=contact_id))


def pages(client: TestClient, limit: int) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/admin/segments/shoe-fans/members", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return


class TestMembers:
    """Members come oldest entry first, in pages linked by an opaque cursor."""

    def test_pages_cover_every_member_once_in_entry_order(self, client: TestClient,
                                                          shoe_fans: list[str]) -> None:
        """25 members in pages of 10: 10, 10, 5, then no cursor."""
        seen = list(pages(client, 10))
        assert [len(p["data"]) for p in seen] == [10, 10, 5]
        assert all(p["count"] == 25 for p in seen)
        assert [m["contact_id"] for p in seen for m in p["data"]] == shoe_fans
        assert seen[0]["data"][0] == {"contact_id": "c00", "entered_at": T0}

    def test_exact_multiple_ends_without_an_empty_page(self, client: TestClient,
                                                       shoe_fans: list[str]) -> None:
        """A limit equal to the total gives one page and no cursor."""
        assert [len(p["data"]) for p in pages(client, 25)] == [25]

    def test_members_leaving_while_paging_do_not_shift_the_rest(
            self, client: TestClient, redis_client: redis.Redis, shoe_fans: list[str]) -> None:
        """The cursor's own member and earlier ones leave; the next page starts right after it."""
        key = keys.segment_members("shoe-fans")
        first = client.get("/v1/admin/segments/shoe-fans/members", params={"limit": 4}, headers=ADMIN).json()
        assert [m["contact_id"] for m in first["data"]] == shoe_fans[:4]
        redis_client.zrem(key, *shoe_fans[:4])  # c03 (the cursor) left too
        redis_client.zadd(key, {"c00": T0 + 100})  # c00 re-entered: now last
        second = client.get("/v1/admin/segments/shoe-fans/members",
                            params={"limit": 4, "cursor": first["next_cursor"]}, headers=ADMIN).json()
        assert [m["contact_id"] for m in second["data"]] == shoe_fans[4:8]
        assert second["count"] == 22

    def test_bad_cursor_limit_and_unknown_segment(self, client: TestClient, shoe_fans: list[str]) -> None:
        """422 for a cursor that is not ours or a limit out of range; 404 for an unknown segment."""
        base = "/v1/admin/segments/shoe-fans/members"
        assert client.get(base, params={"cursor": "!!"}, headers=ADMIN).status_code == 422
        assert client.get(base, params={"cursor": "bm90IGpzb24"}, headers=ADMIN).status_code == 422
        assert client.get(base, params={"limit": 0}, headers=ADMIN).status_code == 422
        assert client.get(base, params={"limit": 1001}, headers=ADMIN).status_code == 422
        assert client.get("/v1/admin/segments/nope/members", headers=ADMIN).status_code == 404

    def test_empty_segment(self, client: TestClient) -> None:
        """A segment nobody is in yet: no data, count 0."""
        client.put("/v1/admin/segments/empty", json={"when": SHOES}, headers=ADMIN)
        body = client.get("/v1/admin/segments/empty/members", headers=ADMIN).json()
        assert body == {"data": [], "count": 0, "next_cursor": None}


class TestContactSegments:
    """A contact's segments come from its profile, found by any of its ids."""

    def test_by_contact_id_and_alias(self, client: TestClient, redis_client: redis.Redis) -> None:
        """Sorted segment ids with a count; an alias resolves to the same contact."""
        profile = Profile(contact_id="anon-1", segments=["vip", "shoe-fans"])
        redis_client.set(keys.contact_profile("anon-1"), encode_profile(profile))
        redis_client.set(keys.contact_alias("user-1"), "anon-1")
        for any_id in ("anon-1", "user-1"):
            body = client.get(f"/v1/admin/contacts/{any_id}/segments", headers=ADMIN).json()
            assert body == {"contact_id": "anon-1", "data": ["shoe-fans", "vip"], "count": 2}
        assert client.get("/v1/admin/contacts/ghost/segments", headers=ADMIN).status_code == 404


class TestBackfill:
    """Progress of re-evaluating every contact under the newest configuration version."""

    def test_progress_counts_finished_contact_shards(self, client: TestClient,
                                                     redis_client: redis.Redis, shoe_fans: list[str]) -> None:
        """8 contact shards in 2 dataflow stages: 3 of 16 done, then all 16."""
        url = "/v1/admin/segments/shoe-fans/backfill"
        assert client.get(url, headers=ADMIN).json() == {
            "version": 1, "shards_done": 0, "shards_total": 16, "contacts": 0, "done": False}
        redis_client.hset(keys.backfill_progress(1), mapping={"visitors:0": 10, "visitors:3": 7, "contacts:5": 0})
        assert client.get(url, headers=ADMIN).json() == {
            "version": 1, "shards_done": 3, "shards_total": 16, "contacts": 17, "done": False}
        rest = {f"{stage}:{s}": 1 for stage in ("visitors", "contacts") for s in range(8)}
        for done in ("visitors:0", "visitors:3", "contacts:5"):
            del rest[done]
        redis_client.hset(keys.backfill_progress(1), mapping=rest)
        body = client.get(url, headers=ADMIN).json()
        assert (body["shards_done"], body["contacts"], body["done"]) == (16, 30, True)

    def test_older_version_and_unknown_segment(self, client: TestClient, shoe_fans: list[str]) -> None:
        """`?version=` asks about another version; version 0 has nothing to do."""
        url = "/v1/admin/segments/shoe-fans/backfill"
        body = client.get(url, params={"version": 0}, headers=ADMIN).json()
        assert body["done"] is True and body["version"] == 0
        assert client.get("/v1/admin/segments/nope/backfill", headers=ADMIN).status_code == 404


class TestTags:
    """Tag changes become one internal event on the contact's own stream shard."""

    def test_tag_change_of_an_anonymous_visitor_is_addressed_by_its_anonymous_id(
            self, client: TestClient, redis_client: redis.Redis) -> None:
        """202, one TagsChanged with add/remove, keyed as the visitor stage keys the visitor."""
        redis_client.set(keys.contact_profile("anon-42"), anonymous("anon-42"))
        response = client.post("/v1/admin/contacts/anon-42/tags",
                               json={"add": ["vip", "b2b", "vip"], "remove": ["cold-lead"]}, headers=ADMIN)
        assert response.status_code == 202 and response.json() == {"accepted": 1}
        shard = shard_of("anon-42", SHARDS)
        (event,) = stream_events(redis_client, shard)
        assert isinstance(event, TagsChanged)
        assert event.anonymous_id == "anon-42" and event.user_id is None
        assert (event.add, event.remove) == (["vip", "b2b"], ["cold-lead"])
        assert event.message_id and event.timestamp is not None and event.timestamp.tzinfo is not None
        assert event.received_at == event.timestamp
        assert stream_events(redis_client, 1 - shard) == []

    def test_an_email_in_any_case_is_resolved_to_its_known_contact(self, client: TestClient,
                                                                    redis_client: redis.Redis) -> None:
        """Tagging by e-mail (any case) addresses the owning contact by its user id."""
        redis_client.set(keys.contact_profile("u-7"), known("u-7"))
        redis_client.set(keys.contact_alias("ada@example.com"), "u-7")
        assert client.post("/v1/admin/contacts/Ada@Example.com/tags", json={"add": ["x"]},
                           headers=ADMIN).status_code == 202
        (event,) = stream_events(redis_client, shard_of("u-7", SHARDS))
        assert event.user_id == "u-7" and event.anonymous_id is None

    @pytest.mark.parametrize(("body", "message"), [
        ({}, "nothing to add or remove"),
        ({"add": ["a"], "remove": ["a"]}, "tags both added and removed: a"),
        ({"add": [""]}, "at `$.add[0]`"),
        ({"add": "vip"}, "Expected `array`, got `str` - at `$.add`"),
        ({"tags": ["vip"]}, "unknown field `tags`"),
    ])
    def test_bad_bodies_are_422(self, client: TestClient, redis_client: redis.Redis,
                                body: dict[str, Any], message: str) -> None:
        """Nothing is appended for a bad body."""
        redis_client.set(keys.contact_profile("anon-1"), encode_profile(Profile(contact_id="anon-1")))
        response = client.post("/v1/admin/contacts/anon-1/tags", json=body, headers=ADMIN)
        assert response.status_code == 422
        assert message in response.json()["error"]
        assert all(stream_events(redis_client, s) == [] for s in range(SHARDS))

    def test_unknown_contact_is_404(self, client: TestClient) -> None:
        """Tags go to contacts that exist."""
        response = client.post("/v1/admin/contacts/ghost/tags", json={"add": ["x"]}, headers=ADMIN)
        assert response.status_code == 404


class TestLists:
    """List changes become one internal event per contact, each on its contact's shard."""

    def test_each_contact_gets_an_event_on_its_shard(self, client: TestClient,
                                                     redis_client: redis.Redis) -> None:
        """Added and removed members; known ids resolved and keyed by stage, unknown ids used as given."""
        redis_client.set(keys.contact_profile("anon-1"), anonymous("anon-1"))
        redis_client.set(keys.contact_profile("u-5"), known("u-5"))
        redis_client.set(keys.contact_alias("ada@example.com"), "u-5")
        body = {"add": ["anon-1", "crm-1", "ada@example.com", "anon-1"], "remove": ["anon-3"]}
        response = client.post("/v1/admin/lists/newsletter/members", json=body, headers=ADMIN)
        assert response.status_code == 202 and response.json() == {"accepted": 4}
        expected = {("anon-1", None): True, (None, "crm-1"): True, (None, "u-5"): True, (None, "anon-3"): False}
        found: dict[tuple[str | None, str | None], bool] = {}
        for shard in range(SHARDS):
            for event in stream_events(redis_client, shard):
                assert isinstance(event, ListChanged) and event.list_id == "newsletter"
                assert shard_of(routing_id(event), SHARDS) == shard
                found[(event.anonymous_id, event.user_id)] = event.member
        assert found == expected

    @pytest.mark.parametrize(("path", "body", "message"), [
        ("/v1/admin/lists/news%20letter/members", {"add": ["a"]}, "list id 'news letter'"),
        ("/v1/admin/lists/l/members", {"add": ["a"], "remove": ["a"]}, "contacts both added and removed: a"),
        ("/v1/admin/lists/l/members", {"add": ["a"] * 1001}, "Expected `array` of length <= 1000"),
    ])
    def test_bad_requests_are_422(self, client: TestClient, path: str, body: dict[str, Any],
                                  message: str) -> None:
        """Bad list id, overlap, too many contacts."""
        response = client.post(path, json=body, headers=ADMIN)
        assert response.status_code == 422
        assert message in response.json()["error"]

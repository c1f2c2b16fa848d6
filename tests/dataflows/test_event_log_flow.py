"""The contact's recent events (`Profile.recent_events`) through the real dataflow: events in, profile out."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import redis

from dataflows.capabilities.event_log import MAX_PAGE, MAX_TEXT
from dataflows.io.outputs import ProfileWrite
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, visitor_logic
from state import keys
from state.events import Event, Identify, ListChanged, Page, TagsChanged, Track
from state.profile import Profile
from tests.dataflows.live import SHARDS, ago, live_page, profile, send
from tests.factories import FIXED_NOW
from tests.helpers import Process, RedisServer, running_dataflow, running_redis, wait_for

SIZE = 5
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def client(module_redis: RedisServer) -> Iterator[redis.Redis]:
    connection = module_redis.client()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def dataflow(module_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """One dataflow keeping the last 5 events of each contact, for the whole module."""
    with running_dataflow(module_redis.url, tmp_path_factory.mktemp("df"), stream_shards=str(SHARDS),
                          contact_shards="16", recovery="false", event_log_size=str(SIZE)) as process:
        yield process


def page_at(who: str, at: datetime, path: str) -> Page:
    return Page(message_id=str(uuid.uuid4()), anonymous_id=who, timestamp=at, received_at=at,
                properties={"url": f"https://shop.example{path}"})


def track_at(at: datetime, event: str, anonymous_id: str | None = None, user_id: str | None = None,
             **props: object) -> Track:
    return Track(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, user_id=user_id, event=event,
                 timestamp=at, received_at=at, properties=dict(props))


def timeline(client: redis.Redis, contact_id: str) -> list[tuple[str, str, str]]:
    """(type, name, page) of the contact's recent events, as the profile lists them."""
    found = profile(client, contact_id)
    return [(e.type, e.name, e.page) for e in found.recent_events] if found else []


def wait_for_profile(client: redis.Redis, contact_id: str, done: Callable[[Profile], bool], what: str,
                     process: Process) -> Profile:
    def ready() -> Profile | None:
        found = profile(client, contact_id)
        return found if found is not None and done(found) else None

    try:
        found = wait_for(ready, 15, what)
        assert found is not None
        return found
    except AssertionError:
        print(process.log())
        raise


class TestTimeline:
    """The profile lists the contact's last events, newest first, at most `event_log_size`."""

    def test_the_last_five_events_are_kept_newest_first(self, dataflow: Process, client: redis.Redis) -> None:
        """Eight page views: the profile lists the last five, the latest first, with their paths."""
        send(client, [page_at("log-a", ago(60 - k), f"/p{k}") for k in range(8)])
        found = wait_for_profile(client, "log-a", lambda p: p.counters.page_views == 8, "eight page views", dataflow)
        assert [e.page for e in found.recent_events] == ["/p7", "/p6", "/p5", "/p4", "/p3"]
        assert [e.type for e in found.recent_events] == ["page"] * SIZE
        times = [e.at for e in found.recent_events]
        assert times == sorted(times, reverse=True)

    def test_an_e_commerce_event_shows_its_product_and_value(self, dataflow: Process, client: redis.Redis) -> None:
        """A product added names its product and the line's value; an order its total."""
        send(client, [track_at(ago(5), "Product Added", "log-b", product_id="sku-9", name="Trail shoe",
                               price=59.0, quantity=2),
                      track_at(ago(4), "Order Completed", "log-b", total=118.0)])
        found = wait_for_profile(client, "log-b", lambda p: len(p.recent_events) == 2, "two events", dataflow)
        order, added = found.recent_events
        assert (order.name, order.value) == ("Order Completed", 118.0)
        assert (added.name, added.product_id, added.product, added.value) == ("Product Added", "sku-9",
                                                                              "Trail shoe", 118.0)

    def test_a_visitor_logging_in_brings_its_timeline_interleaved_by_time(
            self, dataflow: Process, client: redis.Redis) -> None:
        """The known contact's events and the visitor's interleave by time; the merged list keeps five."""
        send(client, [track_at(ago(50), "Email Opened", user_id="user-m"),
                      track_at(ago(30), "Email Link Clicked", user_id="user-m")])
        wait_for_profile(client, "user-m", lambda p: len(p.recent_events) == 2, "the user's two events", dataflow)
        send(client, [page_at("anon-m", ago(60), "/first"), page_at("anon-m", ago(40), "/second"),
                      page_at("anon-m", ago(20), "/third")])
        wait_for_profile(client, "anon-m", lambda p: len(p.recent_events) == 3, "the visitor's pages", dataflow)
        at = ago(10)
        send(client, [Identify(message_id=str(uuid.uuid4()), anonymous_id="anon-m", user_id="user-m",
                               timestamp=at, received_at=at, traits={"email": "m@example.com"})])
        found = wait_for_profile(client, "user-m", lambda p: "anon-m" in p.anonymous_ids, "the merge", dataflow)
        assert [(e.type, e.name or e.page) for e in found.recent_events] == [
            ("identify", "user-m"), ("page", "/third"), ("track", "Email Link Clicked"), ("page", "/second"),
            ("track", "Email Opened")]  # "/first", the oldest of six, is dropped

    def test_a_hostile_product_name_and_url_are_kept_short_and_as_text(
            self, dataflow: Process, client: redis.Redis) -> None:
        """Markup and over-long strings are stored clipped, verbatim, in a profile that still decodes."""
        long_path = "/" + "a" * 5000
        send(client, [page_at("log-h", ago(3), long_path),
                      track_at(ago(2), "Product Viewed", "log-h", product_id=HOSTILE + "x" * 5000,
                               name=HOSTILE + "y" * 5000, price="NaN")])
        found = wait_for_profile(client, "log-h", lambda p: len(p.recent_events) == 2, "both events", dataflow)
        viewed, page = found.recent_events
        assert viewed.product == (HOSTILE + "y" * 5000)[:MAX_TEXT] and viewed.product.startswith("<img src=x")
        assert viewed.product_id == (HOSTILE + "x" * 5000)[:MAX_TEXT] and viewed.value is None
        assert page.page == long_path[:MAX_PAGE]
        assert len(msgspec.json.encode(found.recent_events)) < 700  # 15 KB of input, two small entries


class TestOff:
    """`event_log_size` 0 keeps no events."""

    def test_a_contact_has_no_recent_events_when_the_log_is_off(self, redis_server: RedisServer,
                                                                 redis_client: redis.Redis, tmp_path: Path) -> None:
        client = redis_client  # a Redis of its own: the module's dataflow (size 5) reads the module's
        with running_dataflow(redis_server.url, tmp_path / "df-off", stream_shards=str(SHARDS),
                              contact_shards="16", recovery="false", event_log_size="0") as process:
            send(client, [live_page("log-off"), live_page("log-off"),
                          track_at(ago(1), "Product Added", "log-off", product_id="p1")])
            found = wait_for_profile(client, "log-off", lambda p: p.counters.events == 3, "three events", process)
        assert found.recent_events == [] and found.counters.page_views == 2
        assert b"recent_events" not in (client.get(keys.contact_profile("log-off")) or b"")


class TestSnapshot:
    """The log is part of the contact's snapshot: a resumed shard keeps it."""

    def test_a_resumed_shard_continues_the_timeline(self) -> None:
        def logic(resume: bytes | None):  # type: ignore[no-untyped-def]
            config = ContactConfig(event_log_size=3)
            return visitor_logic(config, ConfigLoader(None), lambda: FIXED_NOW.timestamp())(resume)

        def events(*paths: str) -> list[Event]:
            return [page_at("snap", FIXED_NOW, p) for p in paths]

        first = logic(None)
        first.on_batch(events("/a", "/b"))
        resumed = logic(first.snapshot())
        out, _ = resumed.on_batch(events("/c", "/d"))
        written = [msgspec.json.decode(o.profile_json, type=Profile) for o in out if isinstance(o, ProfileWrite)]
        assert [e.page for e in written[-1].recent_events] == ["/d", "/c", "/b"]


class TestLateEvents:
    """An event that arrives after later ones is listed at its own time."""

    def test_a_late_page_view_is_inserted_where_it_belongs(self) -> None:
        logic = visitor_logic(ContactConfig(event_log_size=3), ConfigLoader(None), lambda: FIXED_NOW.timestamp())(None)
        minute = timedelta(minutes=1)
        logic.on_batch([page_at("late", FIXED_NOW - 3 * minute, "/1"), page_at("late", FIXED_NOW - minute, "/3")])
        out, _ = logic.on_batch([page_at("late", FIXED_NOW - 2 * minute, "/2")])
        written = [msgspec.json.decode(o.profile_json, type=Profile) for o in out if isinstance(o, ProfileWrite)]
        assert [e.page for e in written[-1].recent_events] == ["/3", "/2", "/1"]


class TestAdminChanges:
    """An operator's tag, list and workflow changes are listed among the contact's events."""

    def test_tags_and_lists_set_through_the_admin_api_are_listed(self) -> None:
        logic = visitor_logic(ContactConfig(event_log_size=5), ConfigLoader(None), lambda: FIXED_NOW.timestamp())(None)
        minute = timedelta(minutes=1)

        tagged, listed = FIXED_NOW - 2 * minute, FIXED_NOW - minute
        out, _ = logic.on_batch([
            page_at("admin-ed", FIXED_NOW - 3 * minute, "/home"),
            TagsChanged(message_id="t1", anonymous_id="admin-ed", timestamp=tagged, received_at=tagged,
                        add=["vip"], remove=["trial"]),
            ListChanged(message_id="l1", anonymous_id="admin-ed", timestamp=listed, received_at=listed,
                        list_id="newsletter")])
        written = [msgspec.json.decode(o.profile_json, type=Profile) for o in out if isinstance(o, ProfileWrite)]
        assert [(e.type, e.name or e.page) for e in written[-1].recent_events] == [
            ("list", "+newsletter"), ("tags", "+vip -trial"), ("page", "/home")]

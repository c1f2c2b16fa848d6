"""Live per-contact state through the real dataflow process and a real Redis."""

from __future__ import annotations

import random
import time
from pathlib import Path

import redis

from state.config import (
    DAY,
    ActiveConfig,
    All,
    AnyOf,
    Cart,
    EventMatch,
    HasTag,
    Not,
    PropertyCondition,
    ScoreGroup,
    ScoringRule,
    SegmentDef,
    TagRule,
    Total,
    WindowCount,
)
from state.events import Event
from tests.dataflows.live import (
    SHARDS,
    ago,
    comparable,
    live_identify,
    live_page,
    live_track,
    members,
    profile,
    publish,
    segment_events,
    send,
)
from tests.helpers import RedisServer, running_dataflow, wait_for

NO_DECAY = {"default": ScoreGroup(half_life_s=0)}


def dataflow(server: RedisServer, tmp: Path, name: str = "df"):  # type: ignore[no-untyped-def]
    return running_dataflow(server.url, tmp / name, stream_shards=str(SHARDS), contact_shards="16")


class TestRuleChanges:
    """Scoring rules and segments change in the running flow within a second."""

    def test_a_new_scoring_rule_applies_to_the_running_flow(self, redis_server: RedisServer,
                                                             tmp_path: Path) -> None:
        """Publish +40 for a pricing page view; the next such view scores 40 more within 1 s."""
        client = redis_server.client()
        with dataflow(redis_server, tmp_path):
            send(client, [live_track("v1", "Pricing Viewed")])
            wait_for(lambda: (p := profile(client, "v1")) is not None and p.counters.events == 1, 20,
                     "the first event")
            assert profile(client, "v1").score == 0  # type: ignore[union-attr]
            publish(redis_server.url, ActiveConfig(score_groups=NO_DECAY, scoring_rules=[
                ScoringRule("pricing", EventMatch("Pricing Viewed"), 40.0)]))
            wait_for(lambda: profile(client, "v1").config_version == 1, 5,  # type: ignore[union-attr]
                     "the running flow to switch to version 1")
            sent = time.monotonic()
            send(client, [live_track("v1", "Pricing Viewed")])
            wait_for(lambda: profile(client, "v1").score == 40, 1.0,  # type: ignore[union-attr]
                     "the new rule's points", interval=0.01)
            assert time.monotonic() - sent < 1.0

    def test_a_new_segment_is_backfilled_over_existing_contacts(self, redis_server: RedisServer,
                                                                tmp_path: Path) -> None:
        """Contacts that already qualify enter a segment created afterwards; progress is reported."""
        client = redis_server.client()
        with dataflow(redis_server, tmp_path):
            send(client, [live_track(f"v{i}", "Product Viewed", category="shoes" if i % 2 else "hats")
                          for i in range(40)])
            wait_for(lambda: all(profile(client, f"v{i}") for i in range(40)), 20, "40 profiles")
            version = publish(redis_server.url, ActiveConfig(segments=[SegmentDef(
                "shoes", WindowCount("category", "shoes", DAY, "gte", 1))]))
            wait_for(lambda: members(client, "shoes") == {f"v{i}" for i in range(1, 40, 2)}, 5,
                     "the backfill to put every shoe viewer in the segment")
            # Both stages, every contact shard report (members may be written before the last report).
            wait_for(lambda: len(client.hgetall(f"attimo:backfill:v{version}")) == 2 * 16, 5,
                     "every contact shard of both stages to report its backfill")


class TestTimePassing:
    """State moves on with the clock, without new events."""

    def test_segment_exit_caused_only_by_time_passing(self, redis_server: RedisServer, tmp_path: Path) -> None:
        """'Viewed shoes in the last 3 s': the visitor leaves the segment ~3 s later, with no event."""
        client = redis_server.client()
        with dataflow(redis_server, tmp_path):
            publish(redis_server.url, ActiveConfig(segments=[SegmentDef(
                "recent-shoes", WindowCount("category", "shoes", 3.0, "gte", 1))]))
            viewed = live_track("v1", "Product Viewed", category="shoes")
            send(client, [viewed])
            wait_for(lambda: members(client, "recent-shoes") == {"v1"}, 10, "v1 to enter")
            leaves_at = viewed.timestamp.timestamp() + 3.0  # type: ignore[union-attr]
            wait_for(lambda: members(client, "recent-shoes") == set(), 10, "v1 to leave", interval=0.01)
            late_by = time.time() - leaves_at
            assert -0.05 <= late_by < 1.0, f"left {late_by:.3f} s after the window moved on"
            changes = [(e.segment_id, e.event) for e in segment_events(client)]
            assert changes == [("recent-shoes", "Segment Entered"), ("recent-shoes", "Segment Exited")]
            assert profile(client, "v1").segments == []  # type: ignore[union-attr]


class TestIdentity:
    """Logging in keeps the anonymous history."""

    def test_identify_merges_cart_and_score_built_anonymously(self, redis_server: RedisServer,
                                                               tmp_path: Path) -> None:
        """Browse and add to cart anonymously, identify: the user's profile has it all; the id resolves."""
        client = redis_server.client()
        with dataflow(redis_server, tmp_path):
            send(client, [live_page("anon-1"), live_track("anon-1", "Product Added", product_id="p9",
                                                          price=42.0, quantity=1)])
            wait_for(lambda: profile(client, "anon-1") is not None, 20, "the anonymous profile")
            send(client, [live_identify("anon-1", "ada@example.com", email="ada@example.com")])
            merged = wait_for(lambda: profile(client, "ada@example.com"), 5, "the merged profile")
            assert merged.counters.page_views == 1 and merged.counters.cart_adds == 1
            assert [line.product_id for line in merged.cart] == ["p9"]
            assert merged.score > 5  # page +1, add +5, decayed by seconds only
            assert merged.anonymous_ids == ["anon-1"]
            wait_for(lambda: profile(client, "anon-1") is None, 5, "the anonymous profile to go")
            assert client.get("attimo:alias:{anon-1}") == b"ada@example.com"
            send(client, [live_page("anon-1")])  # a later anonymous event lands on the contact
            wait_for(lambda: profile(client, "ada@example.com").counters.page_views == 2,  # type: ignore[union-attr]
                     5, "the later page view on the merged contact")


def brute_force_members(events: list[Event]) -> dict[str, set[str]]:
    """Membership computed plainly from the events, independent of the dataflow's code."""
    shoes: dict[str, int] = {}
    orders: dict[str, int] = {}
    cart: dict[str, int] = {}
    vip: set[str] = set()
    for event in events:
        who = event.anonymous_id or ""
        name = getattr(event, "event", None)
        props = getattr(event, "properties", {})
        if name == "Product Viewed" and props.get("category") == "shoes":
            shoes[who] = shoes.get(who, 0) + 1
        elif name == "Order Completed":
            orders[who] = orders.get(who, 0) + 1
            cart[who] = 0
        elif name == "Product Added":
            cart[who] = cart.get(who, 0) + 1
        elif name == "Coupon Applied" and props.get("coupon") == "VIP":
            vip.add(who)
    everyone = {e.anonymous_id or "" for e in events}
    return {
        "shoe-fans": {c for c in everyone if shoes.get(c, 0) >= 3},
        "buyers": {c for c in everyone if orders.get(c, 0) >= 1},
        "carts-no-order": {c for c in everyone if cart.get(c, 0) > 0 and not orders.get(c)},
        "vip-or-shoe-buyer": {c for c in everyone if c in vip or (shoes.get(c, 0) >= 3 and orders.get(c))},
    }


MEMBERSHIP_CONFIG = ActiveConfig(
    score_groups=NO_DECAY,
    tag_rules=[TagRule(EventMatch("Coupon Applied", [PropertyCondition("coupon", "eq", "VIP")]), "vip")],
    segments=[
        SegmentDef("shoe-fans", WindowCount("category", "shoes", 7 * DAY, "gte", 3, event="Product Viewed")),
        SegmentDef("buyers", Total("orders", "gte", 1)),
        SegmentDef("carts-no-order", All([Cart(), Not(Total("orders", "gte", 1))])),
        SegmentDef("vip-or-shoe-buyer", AnyOf([HasTag("vip"), All([
            WindowCount("category", "shoes", 7 * DAY, "gte", 3, event="Product Viewed"),
            Total("orders", "gte", 1)])])),
    ])


def membership_events(contacts: int, count: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    out: list[Event] = []
    for _ in range(count):
        who = f"c{rng.randrange(contacts):05d}"
        when = ago(rng.uniform(60, 3 * DAY))
        roll = rng.random()
        if roll < 0.55:
            out.append(live_track(who, "Product Viewed", when, category=rng.choice(["shoes", "hats", "bags"])))
        elif roll < 0.8:
            out.append(live_track(who, "Product Added", when, product_id=f"p{rng.randrange(30)}", price=10.0))
        elif roll < 0.9:
            out.append(live_track(who, "Order Completed", when, order_id=str(rng.random()), revenue=20.0))
        else:
            out.append(live_track(who, "Coupon Applied", when, coupon=rng.choice(["VIP", "WELCOME"])))
    # Orders must follow adds in time for the plain model above: sort by time.
    out.sort(key=lambda e: e.timestamp)  # type: ignore[arg-type, return-value]
    return out


class TestMembershipAtScale:
    """Segment membership of 10 000 contacts equals a brute-force evaluation."""

    def test_10k_contacts_membership_equals_brute_force(self, redis_server: RedisServer, tmp_path: Path) -> None:
        """Four segments over tags, windows, totals and cart: every member set exact."""
        client = redis_server.client()
        events = membership_events(10_000, 40_000, seed=3)
        expected = brute_force_members(events)
        assert all(expected.values()), "every segment should have members in this data"
        publish(redis_server.url, MEMBERSHIP_CONFIG)
        send(client, events)
        with dataflow(redis_server, tmp_path):
            for segment_id, want in expected.items():
                wait_for(lambda sid=segment_id, w=want: members(client, sid) == w, 120,  # type: ignore[misc]
                         f"members of {segment_id} to equal the brute force")


class TestCrashRecovery:
    """kill -9 and restart leave windows, score and segments as a run without the crash."""

    def test_crash_and_recovery_match_an_uninterrupted_run(self, tmp_path: Path) -> None:
        """Same events, one run killed mid-stream and restarted, one not: identical profiles."""
        from tests.helpers import running_redis

        events = membership_events(500, 6_000, seed=9)
        results: list[dict[str, dict[str, object]]] = []
        for crash in (False, True):
            with running_redis(tmp_path / f"redis-{crash}") as server:
                client = server.client()
                publish(server.url, MEMBERSHIP_CONFIG)
                send(client, events[:2_000])
                with dataflow(server, tmp_path, f"df-{crash}") as process:
                    wait_for(lambda c=client: c.hlen("attimo:progress") == SHARDS, 30, "the flow to read")
                    send(client, events[2_000:4_000])
                    if crash:
                        time.sleep(1.5)  # past a snapshot, then die mid-stream
                        send(client, events[4_000:4_500])
                        process.kill_hard()
                if crash:
                    send(client, events[4_500:5_000])
                    with dataflow(server, tmp_path, f"df-{crash}"):
                        send(client, events[5_000:])
                        results.append(settled_profiles(client, events))
                else:
                    send(client, events[4_000:])
                    with dataflow(server, tmp_path, f"df-{crash}-again"):
                        results.append(settled_profiles(client, events))
        uninterrupted, recovered = results
        differences = {(contact, field) for contact, p in recovered.items() for field, value in p.items()
                       if uninterrupted[contact].get(field) != value}
        assert not differences, f"{len(differences)} differences, e.g. {sorted(differences)[:10]}"
        assert recovered == uninterrupted


def settled_profiles(client: redis.Redis, events: list[Event]) -> dict[str, dict[str, object]]:
    """Every contact's comparable profile once all events are counted."""
    totals: dict[str, int] = {}
    for e in events:
        totals[e.anonymous_id or ""] = totals.get(e.anonymous_id or "", 0) + 1

    def done() -> bool:
        return all((p := profile(client, c)) is not None and p.counters.events == n for c, n in totals.items())

    wait_for(done, 60, "every event to be counted")

    def snapshot() -> dict[str, dict[str, object]]:
        return {c: comparable(p) for c in totals if (p := profile(client, c)) is not None}

    # Timers already due (idle carts of past events) fire right after: wait until nothing changes.
    previous: dict[str, dict[str, object]] = {}
    for _ in range(30):
        current = snapshot()
        if current == previous:
            return current
        previous = current
        time.sleep(0.5)
    raise AssertionError("profiles kept changing")

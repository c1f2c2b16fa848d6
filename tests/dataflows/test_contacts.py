"""The visitor and contact operators' logic, driven directly with a fixed clock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import msgspec

from dataflows.io.outputs import (
    AliasWrite,
    BackfillProgress,
    DecisionPush,
    Handoff,
    ProfileDelete,
    ProfileWrite,
    Routed,
    SegmentChange,
    ShardControl,
)
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state.config import DAY, ActiveConfig, SegmentDef, WindowCount
from state.events import Identify, ListChanged, TagsChanged
from state.profile import Flags, Profile
from tests.factories import FIXED_NOW, page, track


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = FIXED_NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def profiles(outputs: Iterable[object]) -> dict[str, Profile]:
    """The last profile written per contact."""
    return {o.contact_id: msgspec.json.decode(o.profile_json, type=Profile)
            for o in outputs if isinstance(o, ProfileWrite)}


def visitors(clock: Clock, loader: ConfigLoader | None = None, cart_idle_s: float = 1800,
             resume: bytes | None = None, hot: int = 64):  # type: ignore[no-untyped-def]
    config = ContactConfig(cart_idle_s=cart_idle_s, hot_contacts_per_shard=hot)
    return visitor_logic(config, loader or ConfigLoader(None), clock)(resume)


def contacts(clock: Clock, loader: ConfigLoader | None = None):  # type: ignore[no-untyped-def]
    return contact_logic(ContactConfig(), loader or ConfigLoader(None), clock)(None)


class TestEvents:
    """Events update the right contact, once each."""

    def test_a_resent_event_is_counted_once(self) -> None:
        """The tracker resends unacked batches; the same messageId counts once."""
        logic = visitors(Clock())
        event = track("a1", "Product Added", product_id="p1", price=5.0)
        logic.on_batch([event])
        out, _ = logic.on_batch([event])
        assert list(out) == []

    def test_one_profile_per_contact_per_batch(self) -> None:
        """Many events of a contact in one activation write its profile once."""
        out, _ = visitors(Clock()).on_batch([page("a1"), page("a1"), page("a2")])
        written = [o.contact_id for o in out if isinstance(o, ProfileWrite)]
        assert sorted(written) == ["a1", "a2"]
        assert profiles(out)["a1"].counters.page_views == 2

    def test_decision_is_pushed_only_when_it_changes(self) -> None:
        """A visitor's page gets a push when what widgets show changes (here a strip seed), not on every event."""
        logic = visitors(Clock())
        first, _ = logic.on_batch([track("a1", "Product Viewed", product_id="p1")])
        second, _ = logic.on_batch([track("a1", "Product Viewed", product_id="p1"), page("a1")])
        assert [o for o in first if isinstance(o, DecisionPush)]
        assert not [o for o in second if isinstance(o, DecisionPush)]


class TestCartTimer:
    """A cart becomes abandoned by the clock alone."""

    def test_cart_is_marked_abandoned_when_idle_time_passes_without_events(self) -> None:
        """notify_at is the idle deadline; on_notify then flips the flag and rewrites the profile."""
        clock = Clock()
        logic = visitors(clock, cart_idle_s=60)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        assert logic.notify_at() == FIXED_NOW + timedelta(seconds=60)
        clock.now += 59
        early, _ = logic.on_notify()
        assert list(early) == []
        clock.now += 1
        out, _ = logic.on_notify()
        assert profiles(out)["a1"].extra == Flags(cart_abandoned=True)

    def test_a_cart_event_before_the_deadline_postpones_it(self) -> None:
        """Touching the cart restarts the idle time."""
        clock = Clock()
        logic = visitors(clock, cart_idle_s=60)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        later = FIXED_NOW + timedelta(seconds=30)
        logic.on_batch([track("a1", "Product Added", later, product_id="p2", price=5.0)])
        clock.now += 60
        out, _ = logic.on_notify()
        assert all(p.extra is None for p in profiles(out).values())
        assert logic.notify_at() == later + timedelta(seconds=60)

    def test_timers_survive_a_snapshot_and_resume(self) -> None:
        """After recovery the pending deadline is asked for again and fires."""
        clock = Clock()
        logic = visitors(clock, cart_idle_s=60)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        resumed = visitors(clock, cart_idle_s=60, resume=logic.snapshot())
        assert resumed.notify_at() == FIXED_NOW + timedelta(seconds=60)
        clock.now += 61
        out, _ = resumed.on_notify()
        assert profiles(out)["a1"].extra == Flags(cart_abandoned=True)


class TestIdentity:
    """identify merges the anonymous history into the known contact."""

    def test_identify_hands_cart_and_score_built_anonymously_to_the_contact(self) -> None:
        """Cart, counters and score from before login end up on the user's profile."""
        clock = Clock()
        visitor, contact = visitors(clock), contacts(clock)
        visitor.on_batch([page("a1"), track("a1", "Product Added", product_id="p1", price=30.0)])
        login = Identify(message_id="m-login", anonymous_id="a1", user_id="ada@example.com",
                         timestamp=FIXED_NOW, received_at=FIXED_NOW, traits={"email": "ada@example.com"})
        out, _ = visitor.on_batch([login, page("a1")])
        out = list(out)
        assert AliasWrite("a1", "ada@example.com") in out
        assert ProfileDelete("a1") in out
        onward = [o for o in out if isinstance(o, Routed | Handoff)]
        assert [type(o) for o in onward] == [Handoff, Routed, Routed]
        merged, _ = contact.on_batch(onward)
        profile = profiles(merged)["ada@example.com"]
        assert profile.counters.page_views == 2
        assert profile.counters.cart_adds == 1
        assert [line.product_id for line in profile.cart] == ["p1"]
        assert profile.score == 1 + 5 + 1
        assert profile.anonymous_ids == ["a1"]

    def test_later_anonymous_events_land_on_the_contact(self) -> None:
        """After the link, an event with only the anonymous id is routed to the user."""
        visitor = visitors(Clock())
        visitor.on_batch([track("a1", "Signed Up", user_id="u1")])
        out, _ = visitor.on_batch([page("a1")])
        assert [o.contact_id for o in out if isinstance(o, Routed)] == ["u1"]

    def test_blocked_user_ids_never_merge_visitors(self) -> None:
        """userId "0" on two devices must not turn two visitors into one contact."""
        out, _ = visitors(Clock()).on_batch([track("a1", "Order Completed", user_id="0"),
                                             track("a2", "Order Completed", user_id="0")])
        assert sorted(o.contact_id for o in out if isinstance(o, ProfileWrite)) == ["a1", "a2"]
        assert not [o for o in out if isinstance(o, Routed | Handoff)]


class TestLiveConfiguration:
    """A new configuration version re-evaluates every contact of the shard."""

    def test_a_new_segment_is_backfilled_for_existing_contacts(self) -> None:
        """Contacts already there enter the new segment at the switch, with progress reported."""
        clock, loader = Clock(), ConfigLoader(None)
        logic = visitors(clock, loader)
        logic.on_batch([track("a1", "Product Viewed", category="shoes"), page("a2")])
        loader.put(ActiveConfig(version=1, segments=[SegmentDef(
            "shoe-viewers", WindowCount("category", "shoes", DAY, "gte", 1))]))
        out, _ = logic.on_batch([ShardControl(1, "7")])
        out = list(out)
        entered = [(o.contact_id, o.segment_id) for o in out if isinstance(o, SegmentChange) and o.entered]
        assert entered == [("a1", "shoe-viewers")]
        assert BackfillProgress(1, "visitors:7", 2) in out
        assert profiles(out)["a1"].config_version == 1

    def test_a_segment_is_left_when_its_window_moves_on_without_events(self) -> None:
        """'Viewed shoes in the last hour' turns false exactly an hour later, by timer."""
        clock, loader = Clock(), ConfigLoader(None)
        loader.put(ActiveConfig(version=1, segments=[SegmentDef(
            "hot-shoes", WindowCount("category", "shoes", 3600, "gte", 1))]))
        logic = visitors(clock, loader)
        logic.on_batch([ShardControl(1, "0")])
        out, _ = logic.on_batch([track("a1", "Product Viewed", category="shoes")])
        assert [o.entered for o in out if isinstance(o, SegmentChange)] == [True]
        assert logic.notify_at() == FIXED_NOW + timedelta(hours=1)
        clock.now += 3600
        out, _ = logic.on_notify()
        exits = [o for o in out if isinstance(o, SegmentChange)]
        assert [(e.segment_id, e.entered) for e in exits] == [("hot-shoes", False)]
        assert profiles(out)["a1"].segments == []


class TestRetention:
    """Anonymous visitors are forgotten after their retention; late events are counted."""

    def test_an_inactive_anonymous_visitor_is_purged_with_its_memberships(self) -> None:
        """13 months (here: 1 day) after the last event, profile and segment membership go."""
        clock, loader = Clock(), ConfigLoader(None)
        from state.config import IdentitySettings

        loader.put(ActiveConfig(version=1, identity=IdentitySettings(anonymous_ttl_s=DAY), segments=[
            SegmentDef("shoes", WindowCount("category", "shoes", 30 * DAY, "gte", 1))]))
        logic = visitors(clock, loader)
        logic.on_batch([ShardControl(1, "0"), track("a1", "Product Viewed", category="shoes")])
        clock.now += DAY - 1
        logic.on_notify()
        clock.now += 1
        out, _ = logic.on_notify()
        out = list(out)
        assert ProfileDelete("a1") in out
        assert [(o.segment_id, o.entered) for o in out if isinstance(o, SegmentChange)] == [("shoes", False)]
        assert logic.notify_at() is None

    def test_events_later_than_the_allowed_lateness_are_counted_as_late(self) -> None:
        """Received 2 h after it happened (lateness 1 h): all-time counters yes, windows no."""
        from dataflows.io.outputs import MetricAdd
        from state.events import Page

        clock = Clock()
        happened = FIXED_NOW - timedelta(hours=2)
        late = Page(message_id="late-1", anonymous_id="a1", timestamp=happened, received_at=FIXED_NOW)
        out, _ = visitors(clock).on_batch([late])
        out = list(out)
        profile = profiles(out)["a1"]
        assert profile.counters.page_views == 1
        assert profile.late_events == 1
        assert profile.windows["24h"]["event"] == {}
        assert MetricAdd("late_events", 1) in out

    def test_email_trait_becomes_a_lookup_alias_of_the_contact(self) -> None:
        """identify with traits.email: the e-mail (lower-cased) points at the user's contact."""
        visitor, contact = visitors(Clock()), contacts(Clock())
        login = Identify(message_id="m1", anonymous_id="a1", user_id="u-42", timestamp=FIXED_NOW,
                         received_at=FIXED_NOW, traits={"email": "Ada@Example.com"})
        out, _ = visitor.on_batch([login])
        merged, _ = contact.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
        assert AliasWrite("ada@example.com", "u-42") in list(merged)


class TestMoreIdentity:
    """Devices, alias, the merge cap, and admin tag changes."""

    def _login(self, visitor, contact, anonymous_id: str, user_id: str):  # type: ignore[no-untyped-def]
        login = Identify(message_id=f"login-{anonymous_id}", anonymous_id=anonymous_id, user_id=user_id,
                         timestamp=FIXED_NOW, received_at=FIXED_NOW)
        out, _ = visitor.on_batch([login])
        merged, _ = contact.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
        return profiles(merged).get(user_id)

    def test_two_devices_of_one_user_merge_into_one_contact(self) -> None:
        """Phone and laptop histories add up on the user's contact."""
        clock = Clock()
        visitor, contact = visitors(clock), contacts(clock)
        visitor.on_batch([page("phone"), page("phone"), page("laptop")])
        self._login(visitor, contact, "phone", "u1")
        merged = self._login(visitor, contact, "laptop", "u1")
        assert merged is not None
        assert merged.counters.page_views == 3
        assert sorted(merged.anonymous_ids) == ["laptop", "phone"]

    def test_alias_links_a_previous_id_to_the_user(self) -> None:
        """alias(previousId=a1, userId=u1) hands a1's history to u1."""
        from state.events import Alias

        clock = Clock()
        visitor, contact = visitors(clock), contacts(clock)
        visitor.on_batch([track("a1", "Product Added", product_id="p1", price=3.0)])
        alias = Alias(message_id="al", previous_id="a1", user_id="u1", timestamp=FIXED_NOW, received_at=FIXED_NOW)
        out, _ = visitor.on_batch([alias])
        merged, _ = contact.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
        assert [line.product_id for line in profiles(merged)["u1"].cart] == ["p1"]

    def test_no_more_than_the_cap_of_anonymous_ids_merge(self) -> None:
        """With a cap of 2, a third device's history is not merged (and counted in a metric)."""
        from dataflows.io.outputs import MetricAdd
        from state.config import IdentitySettings

        clock, loader = Clock(), ConfigLoader(None)
        loader.put(ActiveConfig(version=1, identity=IdentitySettings(max_anonymous_ids=2)))
        visitor, contact = visitors(clock, loader), contacts(clock, loader)
        visitor.on_batch([ShardControl(1, "0")])
        contact.on_batch([ShardControl(1, "0")])
        visitor.on_batch([page(f"d{i}") for i in range(3)])
        for i in range(2):
            self._login(visitor, contact, f"d{i}", "u1")
        login = Identify(message_id="login-d2", anonymous_id="d2", user_id="u1", timestamp=FIXED_NOW,
                         received_at=FIXED_NOW)
        out, _ = visitor.on_batch([login])
        merged, _ = contact.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
        merged = list(merged)
        assert MetricAdd("identity_merge_cap_reached", 1) in merged
        assert profiles(merged)["u1"].counters.page_views == 2

    def test_admin_tag_and_list_changes_apply_in_stream_order(self) -> None:
        """TagsChanged adds and removes tags; ListChanged sets list membership."""
        visitor, contact = visitors(Clock()), contacts(Clock())
        stamp = {"timestamp": FIXED_NOW, "received_at": FIXED_NOW}
        tagged = TagsChanged(message_id="t1", user_id="u1", add=["vip", "newsletter"], **stamp)
        untagged = TagsChanged(message_id="t2", user_id="u1", remove=["newsletter"], **stamp)
        listed = ListChanged(message_id="t3", user_id="u1", list_id="spring-sale", **stamp)
        out, _ = visitor.on_batch([tagged, untagged, listed])
        merged, _ = contact.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
        profile = profiles(merged)["u1"]
        assert profile.tags == ["vip"]
        assert profile.lists == ["spring-sale"]
        assert profile.counters.events == 0  # admin changes are not activity


class TestColdContacts:
    """Contacts beyond the hot set are kept encoded and lose nothing."""

    def test_cold_contacts_keep_counting_and_survive_a_snapshot(self) -> None:
        """With one hot contact, three visitors alternate: every count and deadline is right."""
        clock = Clock()
        logic = visitors(clock, cart_idle_s=60, hot=1)
        for _ in range(3):
            for who in ("a1", "a2", "a3"):
                logic.on_batch([page(who)])
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        logic.on_batch([page("a2")])  # a1 goes cold with a pending deadline
        resumed = visitors(clock, cart_idle_s=60, hot=1, resume=logic.snapshot())
        out, _ = resumed.on_batch([page("a3")])
        assert profiles(out)["a3"].counters.page_views == 4
        clock.now += 60
        out, _ = resumed.on_notify()
        abandoned = profiles(out)["a1"]
        assert abandoned.extra == Flags(cart_abandoned=True)
        assert abandoned.counters.page_views == 3


def test_stored_tallies_are_the_public_counters_without_the_order_figures() -> None:
    """Tallies (array-like, in snapshots) mirror Counters (in profiles); orders and revenue belong to `orders`."""
    from dataflows.capabilities.counters import Tallies
    from state.profile import Counters

    assert [*Tallies.__struct_fields__, "orders", "revenue"] == sorted(
        Counters.__struct_fields__, key=[*Tallies.__struct_fields__, "orders", "revenue"].index)


def test_a_merged_visitor_leaves_its_segments_and_the_contact_enters_them() -> None:
    """After identify, memberships move from the anonymous id to the user (found by the benchmark)."""
    clock, loader = Clock(), ConfigLoader(None)
    loader.put(ActiveConfig(version=1, segments=[SegmentDef(
        "shoes", WindowCount("category", "shoes", DAY, "gte", 1))]))
    visitor, contact = visitors(clock, loader), contacts(clock, loader)
    visitor.on_batch([ShardControl(1, "0"), track("a1", "Product Viewed", category="shoes")])
    contact.on_batch([ShardControl(1, "0")])
    login = Identify(message_id="m-login", anonymous_id="a1", user_id="u1", timestamp=FIXED_NOW,
                     received_at=FIXED_NOW)
    out, _ = visitor.on_batch([login])
    out = list(out)
    assert [(o.contact_id, o.entered) for o in out if isinstance(o, SegmentChange)] == [("a1", False)]
    merged, _ = contact.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
    assert [(o.contact_id, o.entered) for o in merged if isinstance(o, SegmentChange)] == [("u1", True)]


def test_temperature_cools_by_decay_alone_on_time() -> None:
    """25 points, half-life 100 s: warm until the score decays below 20, then cold, by timer."""
    import math

    from state.config import EventMatch, ScoreGroup, ScoringRule

    clock, loader = Clock(), ConfigLoader(None)
    loader.put(ActiveConfig(version=1, score_groups={"default": ScoreGroup(half_life_s=100)},
                            scoring_rules=[ScoringRule("demo", EventMatch("Demo Requested"), 25.0)]))
    logic = visitors(clock, loader)
    out, _ = logic.on_batch([ShardControl(1, "0"), track("a1", "Demo Requested")])
    assert profiles(out)["a1"].temperature == "warm"
    cools_at = FIXED_NOW.timestamp() + 100 * math.log2(25 / 20)
    due = logic.notify_at()
    assert due is not None and abs(due.timestamp() - cools_at) < 0.01
    clock.now = due.timestamp()
    out, _ = logic.on_notify()
    assert profiles(out)["a1"].temperature == "cold"


class TestStagesOverSegments:
    """A stage rule may test a segment (it was accepted and then never held)."""

    def test_a_stage_rule_using_a_segment_holds(self) -> None:
        from state.config import InSegment, StageRule, Total, default_stage_rules

        loader = ConfigLoader(None)
        loader.put(ActiveConfig(
            version=1,
            segments=[SegmentDef("big-spender", Total("revenue", "gte", 100.0))],
            stages=[StageRule("vip", InSegment("big-spender")), *default_stage_rules()]))
        logic = visitors(Clock(), loader)
        out, _ = logic.on_batch([ShardControl(1, "0"),
                                 track("a1", "Order Completed", order_id="o1", revenue=150.0)])
        profile = profiles(out)["a1"]
        assert profile.segments == ["big-spender"] and profile.stage == "vip"
        small, _ = logic.on_batch([track("a2", "Order Completed", order_id="o2", revenue=10.0)])
        assert profiles(small)["a2"].stage == "retention"


class TestCartQuantities:
    """Cart lines hold whole units: a fractional amount is one unit, never a line of zero."""

    def test_a_fractional_quantity_adds_one_unit(self) -> None:
        out, _ = visitors(Clock()).on_batch([track("a1", "Product Added", product_id="cheese", price=12.0,
                                                   quantity=0.5)])
        (line,) = profiles(out)["a1"].cart
        assert line.quantity == 1 and profiles(out)["a1"].cart_value == 12.0

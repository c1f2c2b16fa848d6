"""Workflows in the contact shard, driven with a fixed clock: triggers, steps, goals, caps, versions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from dataflows.io.outputs import ActionOut, Handoff, ProfileWrite, Routed, ShardControl, TallyWrite
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state.config import ActiveConfig, EventMatch, SegmentDef, WindowCount
from state.events import Identify, Track, WorkflowEntry
from state.profile import Profile, decode_profile
from state.workflows import (
    Branch,
    ChangeTags,
    Delay,
    End,
    Goal,
    MessagingPolicy,
    OnCartIdle,
    OnEvent,
    OnManual,
    OnScore,
    OnSegment,
    SendWebhook,
    Split,
    SplitArm,
    WaitFor,
    Workflow,
)
from tests.factories import FIXED_NOW, page

T0 = FIXED_NOW.timestamp()  # 2026-11-23 12:00 UTC
NO_QUIET = MessagingPolicy(quiet_hours=None, caps={})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Shop:
    """One visitor shard and one contact shard under a configuration with workflows."""

    def __init__(self, *workflows: Workflow, messaging: MessagingPolicy = NO_QUIET, **config: Any) -> None:
        self.clock = Clock()
        self.loader = ConfigLoader(None)
        self.loader.put(ActiveConfig(version=1, workflows=list(workflows), messaging=messaging, **config))
        settings = ContactConfig(cart_idle_s=3600)
        self.visitors = visitor_logic(settings, self.loader, self.clock)(None)
        self.contacts = contact_logic(settings, self.loader, self.clock)(None)
        self.visitors.on_batch([ShardControl(1, "0")])
        self.contacts.on_batch([ShardControl(1, "0")])

    def send(self, *events: Any) -> list[Any]:
        out, _ = self.visitors.on_batch(list(events))
        onward: list[Routed | Handoff | ShardControl] = [o for o in out if isinstance(o, Routed | Handoff)]
        more, _ = self.contacts.on_batch(onward) if onward else ([], None)
        return [*out, *more]

    def at(self, seconds: float) -> list[Any]:
        """Let the clock reach T0 + seconds, firing every timer on the way."""
        out: list[Any] = []
        target = T0 + seconds
        for logic in (self.visitors, self.contacts):
            while (due := logic.notify_at()) is not None and due.timestamp() <= target:
                self.clock.now = max(self.clock.now, due.timestamp())
                fired, _ = logic.on_notify()
                out += list(fired)
        self.clock.now = target
        return out


def actions(outputs: Iterable[Any]) -> list[str]:
    return [o.action.step_id for o in outputs if isinstance(o, ActionOut)]


def profile(outputs: Iterable[Any], contact_id: str) -> Profile:
    return [decode_profile(o.profile_json) for o in outputs if isinstance(o, ProfileWrite)
            and o.contact_id == contact_id][-1]


def hook(step_id: str, next_step: str | None = None, channel: str = "crm") -> SendWebhook:
    return SendWebhook(id=step_id, endpoint="esp", channel=channel, next=next_step)


def event_at(seconds: float, who: str, event_name: str, **props: Any) -> Track:
    at = FIXED_NOW + timedelta(seconds=seconds)
    return Track(message_id=str(uuid.uuid4()), anonymous_id=who, event=event_name, timestamp=at, received_at=at,
                 properties=props)


WELCOME = Workflow(id="welcome", trigger=OnEvent(EventMatch("Signed Up")),
                   steps=[hook("hello", "wait"), Delay(id="wait", seconds=60, next="tips"), hook("tips")])


class TestEventTriggers:
    """An event enters its workflow in the same activation; delays end by timer."""

    def test_the_first_action_leaves_with_the_event_and_the_next_after_the_delay(self) -> None:
        shop = Shop(WELCOME)
        out = shop.send(event_at(0, "a1", "Signed Up"))
        assert actions(out) == ["hello"]
        assert profile(out, "a1").workflows[0].step == "wait"
        assert actions(shop.at(59)) == []
        assert actions(shop.at(60)) == ["tips"]

    def test_action_ids_are_the_same_when_a_replay_decides_them_again(self) -> None:
        first = Shop(WELCOME)
        replay = Shop(WELCOME)
        event = event_at(0, "a1", "Signed Up")
        ids = [o.action.id for o in first.send(event) if isinstance(o, ActionOut)]
        assert ids == [o.action.id for o in replay.send(event) if isinstance(o, ActionOut)]
        assert ids[0].startswith("act_")

    def test_a_resent_event_does_not_enter_twice(self) -> None:
        shop = Shop(WELCOME)
        event = event_at(0, "a1", "Signed Up")
        shop.send(event)
        assert actions(shop.send(event)) == []

    def test_the_action_carries_the_contact_and_the_cart(self) -> None:
        shop = Shop(WELCOME)
        out = shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=9.0, **{"name": "Mug"}),
                        event_at(0, "a1", "Signed Up"))
        (action,) = [o.action for o in out if isinstance(o, ActionOut)]
        assert action.contact.contact_id == "a1" and action.endpoint == "esp"
        assert [line.name for line in action.cart] == ["Mug"]


class TestWhatActionsCarry:
    """An action carries what its message needs: the products looked at, the entering event's data."""

    def test_the_products_the_contact_engaged_with_most_come_first(self) -> None:
        browse = Workflow(id="browse", trigger=OnEvent(EventMatch("Checkout Abandoned")), steps=[hook("remind")])
        shop = Shop(browse)
        views = [("p2", "bags"), ("p1", "shoes"), ("p2", "bags"), ("p3", None)]
        shop.send(*(event_at(i, "a1", "Product Viewed", product_id=p, **({"category": c} if c else {}))
                    for i, (p, c) in enumerate(views)))
        (action,) = [o.action for o in shop.send(event_at(9, "a1", "Checkout Abandoned")) if isinstance(o, ActionOut)]
        assert [(p.product_id, p.events, p.category) for p in action.products] == [
            ("p2", 2, "bags"), ("p1", 1, "shoes"), ("p3", 1, None)]

    def test_the_order_that_entered_the_contact_is_in_every_action_of_the_run(self) -> None:
        after = Workflow(id="after", trigger=OnEvent(EventMatch("Order Completed")),
                         steps=[hook("thanks", "wait"), Delay(id="wait", seconds=60, next="cross"), hook("cross")])
        shop = Shop(after)
        order = {"order_id": "o-7", "revenue": 30.0, "products": [{"product_id": "p1", "category": "shoes"}]}
        first = [o.action for o in shop.send(event_at(0, "a1", "Order Completed", **order))
                 if isinstance(o, ActionOut)]
        later = [o.action for o in shop.at(60) if isinstance(o, ActionOut)]
        assert [a.trigger for a in first + later] == [order, order]

    def test_a_huge_entering_event_keeps_only_its_short_top_level_fields(self) -> None:
        after = Workflow(id="after", trigger=OnEvent(EventMatch("Order Completed")), steps=[hook("thanks")])
        products = [{"product_id": f"p{i}", "name": "x" * 100} for i in range(60)]
        out = Shop(after).send(event_at(0, "a1", "Order Completed", order_id="o-8", revenue=5.0, products=products))
        (action,) = [o.action for o in out if isinstance(o, ActionOut)]
        assert action.trigger == {"order_id": "o-8", "revenue": 5.0}


ABANDONED = Workflow(
    id="abandoned", trigger=OnCartIdle(idle_s=60), goal=Goal(event=EventMatch("Order Completed")),
    steps=[hook("first", "pause"), Delay(id="pause", seconds=120, next="second"), hook("second")])


class TestGoals:
    """A goal ends the run the moment it happens: no later action is sent."""

    def test_an_order_between_two_reminders_stops_the_second(self) -> None:
        shop = Shop(ABANDONED)
        shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=5.0))
        assert actions(shop.at(60)) == ["first"]
        out = shop.send(event_at(90, "a1", "Order Completed", order_id="o1", revenue=5.0))
        assert profile(out, "a1").workflows == []
        assert actions(shop.at(400)) == []

    def test_without_the_order_both_reminders_go(self) -> None:
        shop = Shop(ABANDONED)
        shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=5.0))
        assert actions(shop.at(60)) == ["first"]
        assert actions(shop.at(180)) == ["second"]

    def test_a_refused_idle_cart_leaves_no_deadline_in_the_past(self) -> None:
        """Refused by its re-entry rule, the occurrence is used up: no timer firing at every activation."""
        shop = Shop(ABANDONED)
        shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=5.0))
        shop.at(400)  # entered at 60, both reminders sent, run over
        shop.send(event_at(400, "a1", "Product Added", product_id="p2", price=5.0))
        shop.at(470)  # idle again at 460: "never" refuses it
        for logic in (shop.visitors, shop.contacts):
            due = logic.notify_at()
            assert due is None or due.timestamp() > shop.clock.now, due

    def test_the_same_idle_cart_enters_once(self) -> None:
        shop = Shop(ABANDONED)
        shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=5.0))
        shop.at(200)
        assert actions(shop.at(10_000)) == []


class Stats:
    """A workflow's counters as the API sums them: the latest total of each shard, added up."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}

    def read(self, outputs: Iterable[Any]) -> Stats:
        for o in outputs:
            if isinstance(o, TallyWrite):
                self.totals[f"{o.key}|{o.field}"] = o.value
        return self

    def __getitem__(self, counter: str) -> int:
        return sum(v for k, v in self.totals.items() if k.split("|")[1].split(":", 2)[2] == counter)


class TestLiveStats:
    """How many contacts wait at each delay right now; an unsubscribe ends every run."""

    def test_the_waiting_gauge_follows_contacts_into_and_out_of_a_delay(self) -> None:
        shop, stats = Shop(WELCOME), Stats()
        for n, who in enumerate(("a1", "a2", "a3")):
            shop.at(n)
            stats.read(shop.send(event_at(n, who, "Signed Up")))
        assert stats["waiting:wait"] == 3
        assert stats.read(shop.at(60.5))["waiting:wait"] == 2  # a1 entered at 0, waits 60 s
        assert stats.read(shop.at(63))["waiting:wait"] == 0
        assert stats["step:tips"] == 3

    def test_a_goal_met_while_waiting_takes_the_contact_off_the_gauge(self) -> None:
        shop, stats = Shop(ABANDONED), Stats()
        stats.read(shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=5.0)))
        stats.read(shop.at(60))
        assert stats["waiting:pause"] == 1
        stats.read(shop.send(event_at(90, "a1", "Order Completed", order_id="o1", revenue=5.0)))
        assert (stats["waiting:pause"], stats["converted"]) == (0, 1)

    def test_unsubscribed_ends_every_run_and_no_later_step_runs(self) -> None:
        shop, stats = Shop(WELCOME), Stats()
        stats.read(shop.send(event_at(0, "a1", "Signed Up")))
        out = shop.send(event_at(10, "a1", "Unsubscribed"))
        assert profile(out, "a1").workflows == []
        stats.read(out)
        assert (stats["waiting:wait"], stats["unsubscribed"]) == (0, 1)
        assert actions(shop.at(120)) == []


class TestOneBatch:
    """Events read together (one frame, a lagging dataflow, the replay after a crash) act as they did live."""

    TRIAL = Workflow(id="trial", trigger=OnEvent(EventMatch("Trial Started")),
                     goal=Goal(event=EventMatch("Plan Purchased")),
                     steps=[hook("offer", "wait"), Delay(id="wait", seconds=60, next="reminder"), hook("reminder")])

    def test_a_goal_after_its_trigger_in_the_same_batch_stops_the_rest(self) -> None:
        shop = Shop(self.TRIAL)
        out = shop.send(event_at(0, "a1", "Trial Started"), event_at(1, "a1", "Plan Purchased"))
        assert actions(out) == ["offer"]
        assert profile(out, "a1").workflows == []
        assert actions(shop.at(120)) == []
        assert Stats().read(out)["converted"] == 1

    def test_a_goal_before_its_trigger_in_the_same_batch_does_not(self) -> None:
        shop = Shop(self.TRIAL)
        assert actions(shop.send(event_at(0, "a1", "Plan Purchased"), event_at(1, "a1", "Trial Started"))) == [
            "offer"]
        assert actions(shop.at(120)) == ["reminder"]

    def test_an_unsubscribe_after_the_trigger_ends_the_new_run(self) -> None:
        shop = Shop(self.TRIAL)
        out = shop.send(event_at(0, "a1", "Trial Started"), event_at(1, "a1", "Unsubscribed"))
        assert actions(out) == ["offer"] and profile(out, "a1").workflows == []
        assert actions(shop.at(120)) == []

    def test_the_awaited_event_in_the_same_batch_takes_the_then_way(self) -> None:
        flow = Workflow(id="nudge", trigger=OnEvent(EventMatch("Signed Up")), steps=[
            hook("hello", "await"),
            WaitFor(id="await", timeout_s=100, event=EventMatch("Email Opened"), then="thanks", timeout="nudge"),
            hook("thanks"), hook("nudge")])
        shop = Shop(flow)
        out = shop.send(event_at(0, "a1", "Signed Up"), event_at(1, "a1", "Email Opened"))
        assert actions(out) == ["hello", "thanks"]
        assert actions(shop.at(200)) == []


class TestReentry:
    """never / cooldown / always."""

    @pytest.mark.parametrize(("reentry", "cooldown", "entries"), [("never", 0, 1), ("cooldown", 100, 2),
                                                                   ("always", 0, 3)])
    def test_each_rule(self, reentry: str, cooldown: float, entries: int) -> None:
        flow = Workflow(id="visit", trigger=OnEvent(EventMatch("Demo Requested")), steps=[hook("ping")],
                        reentry=reentry, cooldown_s=cooldown)  # type: ignore[arg-type]
        shop = Shop(flow)
        sent = 0
        for seconds in (0, 50, 150):
            shop.at(seconds)
            sent += len(actions(shop.send(event_at(seconds, "a1", "Demo Requested"))))
        assert sent == entries


class TestFrequencyCap:
    """One message per channel per window, across every workflow; held ones are recorded."""

    def test_the_second_workflows_sms_is_held(self) -> None:
        a = Workflow(id="a", trigger=OnEvent(EventMatch("Signed Up")), steps=[hook("sms-a", channel="sms")])
        b = Workflow(id="b", trigger=OnEvent(EventMatch("Form Submitted")), steps=[hook("sms-b", channel="sms")])
        shop = Shop(a, b, messaging=MessagingPolicy(caps={"sms": 3600}, quiet_hours=None))
        assert actions(shop.send(event_at(0, "a1", "Signed Up"))) == ["sms-a"]
        out = shop.send(event_at(10, "a1", "Form Submitted"))
        assert actions(out) == []
        held = profile(out, "a1").actions[-1]
        assert (held.workflow, held.outcome) == ("b", "held")
        assert TallyWrite("attimo:workflow:{b}:stats", "visitors:0:held:sms-b", 1) in out
        shop.at(3700)
        assert actions(shop.send(event_at(3700, "a1", "Form Submitted"))) == []  # b: never re-entered


class TestUnsubscribe:
    """After `Unsubscribed`, e-mail is skipped in every workflow, by Attimo or by the shop's e-mail tool."""

    def test_email_steps_are_skipped_and_other_channels_still_go(self) -> None:
        flow = Workflow(id="news", trigger=OnEvent(EventMatch("Signed Up")),
                        steps=[hook("mail", "text", channel="email"), hook("text", channel="sms")])
        shop = Shop(flow)
        shop.send(event_at(0, "a1", "Unsubscribed"))
        out = shop.send(event_at(5, "a1", "Signed Up"))
        assert actions(out) == ["text"]
        skipped = profile(out, "a1").actions[0]
        assert (skipped.step, skipped.outcome, skipped.reason) == ("mail", "skipped", "unsubscribed")

    def test_a_subscribed_contact_gets_both(self) -> None:
        flow = Workflow(id="news", trigger=OnEvent(EventMatch("Signed Up")),
                        steps=[hook("mail", "text", channel="email"), hook("text", channel="sms")])
        assert actions(Shop(flow).send(event_at(0, "a1", "Signed Up"))) == ["mail", "text"]


class TestQuietHours:
    """A message due at night (contact's time zone) waits for the morning."""

    def test_a_night_message_goes_at_eight(self) -> None:
        flow = Workflow(id="night", trigger=OnEvent(EventMatch("Signed Up")), steps=[hook("hi", channel="email")])
        shop = Shop(flow, messaging=MessagingPolicy(caps={}))  # quiet 21:00–08:00
        # 12:00 UTC is 23:00 in Sydney (UTC+11 in November).
        out = shop.send(Identify(message_id="tz", anonymous_id="a1", timestamp=FIXED_NOW, received_at=FIXED_NOW,
                                 traits={"timezone": "Australia/Sydney"}), event_at(0, "a1", "Signed Up"))
        assert actions(out) == []
        morning = datetime(2026, 11, 24, 8, 0, tzinfo=UTC).timestamp() - 11 * 3600
        assert actions(shop.at(morning - T0 - 1)) == []
        assert actions(shop.at(morning - T0)) == ["hi"]


class TestSplits:
    """A/B/n: fixed shares, the same arm for the same contact."""

    def test_two_thousand_contacts_split_near_their_shares(self) -> None:
        flow = Workflow(id="ab", trigger=OnEvent(EventMatch("Signed Up")), steps=[
            Split(id="split", arms=[SplitArm("a", 20, "x"), SplitArm("b", 30, "y"), SplitArm("c", 50, "z")]),
            hook("x"), hook("y"), hook("z")])
        shop = Shop(flow)
        out = shop.send(*(event_at(0, f"v{i}", "Signed Up") for i in range(2000)))
        counts = {step: actions(out).count(step) for step in "xyz"}
        for step, share in zip("xyz", (0.2, 0.3, 0.5), strict=True):
            assert abs(counts[step] / 2000 - share) < 0.03, counts
        again = Shop(flow).send(*(event_at(0, f"v{i}", "Signed Up") for i in range(2000)))
        assert actions(again) == actions(out)


class TestWaitsAndBranches:
    """Wait for an event with a timeout (both outcomes continue); branch on the live state."""

    FLOW = Workflow(id="wait", trigger=OnEvent(EventMatch("Signed Up")), steps=[
        WaitFor(id="await", timeout_s=100, event=EventMatch("Email Opened"), then="vip", timeout="nudge"),
        Branch(id="vip", when=WindowCount("event", "page", 3600, "gte", 2), then="thanks", otherwise="nudge"),
        hook("thanks"), hook("nudge")])

    def test_the_awaited_event_continues_at_once_and_the_branch_reads_the_state(self) -> None:
        shop = Shop(self.FLOW)
        shop.send(event_at(0, "a1", "Signed Up"), page("a1", FIXED_NOW), page("a1", FIXED_NOW))
        assert actions(shop.send(event_at(5, "a1", "Email Opened"))) == ["thanks"]

    def test_the_timeout_takes_the_other_way(self) -> None:
        shop = Shop(self.FLOW)
        shop.send(event_at(0, "a1", "Signed Up"))
        assert actions(shop.at(99)) == []
        assert actions(shop.at(100)) == ["nudge"]


class TestStateTriggers:
    """Segment entry, score crossing, manual entry — each once, when it happens."""

    def test_entering_a_segment_enters_the_workflow(self) -> None:
        flow = Workflow(id="fans", trigger=OnSegment("shoe-fans"), steps=[hook("hi")])
        shop = Shop(flow, segments=[SegmentDef("shoe-fans", WindowCount("category", "shoes", 3600, "gte", 2))])
        assert actions(shop.send(event_at(0, "a1", "Product Viewed", category="shoes"))) == []
        shop.at(1)
        assert actions(shop.send(event_at(1, "a1", "Product Viewed", category="shoes"))) == ["hi"]

    def test_the_score_passing_a_threshold_enters_once(self) -> None:
        flow = Workflow(id="mql", trigger=OnScore(threshold=25), steps=[hook("notify-crm")])
        shop = Shop(flow)
        shop.send(event_at(0, "a1", "Checkout Started"))  # +10
        shop.at(1)
        assert actions(shop.send(event_at(1, "a1", "Order Completed", order_id="o", revenue=1.0))) == ["notify-crm"]
        shop.at(2)
        assert actions(shop.send(event_at(2, "a1", "Order Completed", order_id="p", revenue=1.0))) == []

    def test_a_new_contacts_first_points_cross_the_threshold(self) -> None:
        flow = Workflow(id="mql", trigger=OnScore(threshold=15), steps=[hook("notify-crm")])
        out = Shop(flow).send(event_at(0, "a1", "Order Completed", order_id="o", revenue=1.0))  # 0 → 20
        assert actions(out) == ["notify-crm"]

    def test_a_workflow_published_later_enters_nobody_already_past_its_trigger(self) -> None:
        """Those in the segment or over the threshold before it existed did not cross anything since."""
        fans = SegmentDef("shoe-fans", WindowCount("category", "shoes", 3600, "gte", 1))
        shop = Shop(segments=[fans])
        shop.send(event_at(0, "a1", "Order Completed", order_id="o", revenue=1.0),
                  event_at(0, "a1", "Product Viewed", category="shoes"))
        later = [Workflow(id="mql", trigger=OnScore(threshold=15), steps=[hook("notify-crm")]),
                 Workflow(id="fans", trigger=OnSegment("shoe-fans"), steps=[hook("hi")])]
        shop.loader.put(ActiveConfig(version=2, workflows=later, segments=[fans], messaging=NO_QUIET))
        out = shop.send(ShardControl(2, "0"))
        shop.at(5)
        assert actions([*out, *shop.send(event_at(5, "a1", "Page Viewed"))]) == []
        assert actions(shop.send(event_at(6, "a2", "Order Completed", order_id="p", revenue=1.0))) == ["notify-crm"]

    def test_manual_entry_and_a_step_that_tags(self) -> None:
        flow = Workflow(id="vip", trigger=OnManual(), steps=[ChangeTags(id="tag", add=["vip"], next="end"),
                                                             End(id="end")])
        shop = Shop(flow)
        shop.send(page("a1"))
        out = shop.send(WorkflowEntry(message_id="m1", anonymous_id="a1", workflow="vip", timestamp=FIXED_NOW,
                                      received_at=FIXED_NOW))
        assert profile(out, "a1").tags == ["vip"]


class TestVersions:
    """Contacts inside a workflow finish on the version they entered with, unless it migrates them."""

    def test_an_edit_leaves_waiting_contacts_on_their_version(self) -> None:
        shop = Shop(WELCOME)
        shop.send(event_at(0, "a1", "Signed Up"))
        v2 = msgspec.structs.replace(WELCOME, version=2, steps=[hook("hello", "wait"),
                                                                 Delay(id="wait", seconds=60, next="new"), hook("new")])
        shop.loader.put(ActiveConfig(version=2, workflows=[v2], retired_workflows=[WELCOME], messaging=NO_QUIET))
        shop.send(ShardControl(2, "0"))
        assert actions(shop.at(60)) == ["tips"]
        assert actions(shop.send(event_at(61, "a2", "Signed Up"))) == ["hello"]

    def test_a_migrating_edit_moves_them_at_the_same_step(self) -> None:
        shop = Shop(WELCOME)
        shop.send(event_at(0, "a1", "Signed Up"))
        v2 = msgspec.structs.replace(WELCOME, version=2, migrate=True, steps=[
            hook("hello", "wait"), Delay(id="wait", seconds=60, next="new"), hook("new")])
        shop.loader.put(ActiveConfig(version=2, workflows=[v2], retired_workflows=[WELCOME], messaging=NO_QUIET))
        shop.send(ShardControl(2, "0"))
        assert actions(shop.at(60)) == ["new"]

    def test_the_goal_of_the_version_a_contact_is_on_still_ends_its_run(self) -> None:
        """Version 2 drops the order goal; a contact still on version 1 is ended by an order all the same
        (only events some kept version listens to are looked at: the retired one's goal counts)."""
        shop = Shop(ABANDONED)
        shop.send(event_at(0, "a1", "Product Added", product_id="p1", price=5.0))
        assert actions(shop.at(60)) == ["first"]
        v2 = msgspec.structs.replace(ABANDONED, version=2, goal=None)
        shop.loader.put(ActiveConfig(version=2, workflows=[v2], retired_workflows=[ABANDONED], messaging=NO_QUIET))
        shop.send(ShardControl(2, "0"))
        out = shop.send(event_at(90, "a1", "Order Completed", order_id="o1", revenue=5.0))
        assert profile(out, "a1").workflows == []
        assert actions(shop.at(400)) == []


class TestIdentity:
    """A visitor's runs continue on its known contact after login."""

    def test_a_run_started_anonymously_continues_after_identify(self) -> None:
        shop = Shop(WELCOME)
        shop.send(event_at(0, "a1", "Signed Up"))
        login = Identify(message_id="login", anonymous_id="a1", user_id="u1", timestamp=FIXED_NOW,
                         received_at=FIXED_NOW)
        out = shop.send(login)
        assert [w.step for w in profile(out, "u1").workflows] == ["wait"]
        fired = shop.at(60)
        assert [(o.action.step_id, o.action.contact.contact_id) for o in fired if isinstance(o, ActionOut)] == [
            ("tips", "u1")]

    def test_what_a_visitor_decides_in_the_batch_it_logs_in_is_not_lost(self) -> None:
        """The visitor's events of that batch are committed before the hand-over; so are their effects."""
        shop = Shop(WELCOME)
        login = Identify(message_id="login", anonymous_id="a1", user_id="u1", timestamp=FIXED_NOW,
                         received_at=FIXED_NOW)
        out = shop.send(event_at(0, "a1", "Signed Up"), login)
        assert [(o.action.step_id, o.action.contact.contact_id) for o in out if isinstance(o, ActionOut)] == [
            ("hello", "a1")]
        assert [w.step for w in profile(out, "u1").workflows] == ["wait"]

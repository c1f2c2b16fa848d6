"""Generated events: every hostile one is refused with a precise reason, and whatever is accepted
survives every later step of the engine, in-process.

Raw events come from `tests.state.event_strategies`: well-formed Segment
events of every type mixed with hostile values (integers beyond 64 bits,
negative or huge amounts, nesting just below and above the limit, long and
unicode strings, control characters in ids, timestamps near year 1 and 9999
with offsets, reserved names, internal types, missing ids, broken JSON). Its
model says what is wrong with each; the validator must accept exactly the
events without faults and refuse the others with a reason naming the field
or the limit at fault.

What is accepted then goes through every later step the dataflow takes in
one process: the stream entry encoding, both stateful stages (driven
directly, wired as `dataflows.flow` wires them) with a snapshot and a resume
in the middle, the timers, and the profile's JSON. Nothing may raise or be
quarantined, the resume must change no output, and every accepted event
must count on exactly one contact.

Bounded and derandomized so CI stays fast and repeatable;
`ATTIMO_LONG_FUZZ=1` runs 50 times as many examples, freshly random.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.flow import contact_router, visitor_router
from dataflows.io.outputs import DecisionPush, Handoff, ProfileDelete, ProfileWrite, Quarantined, Routed, ShardControl
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state.config import (
    DAY,
    AbsenceRule,
    ActiveConfig,
    Anniversary,
    AnyOf,
    Cart,
    EventMatch,
    PropertyCondition,
    ScoringRule,
    SegmentDef,
    TagRule,
    Total,
    Trait,
    WindowCount,
)
from state.config_rules import config_problem
from state.config_store import ConfigControl
from state.events import Event, ListChanged, TagsChanged
from state.profile import Decisions, Profile, decode_profile, encode_profile
from state.streams import decode_entry, encode_entry, group_by_shard
from state.validation import EventValidator, Limits
from tests.factories import FIXED_NOW
from tests.state.event_strategies import (
    FAULT_REASONS,
    HOSTILE,
    PRECISE,
    Generated,
    fuzz_settings,
    pools,
    raw_events,
)

# ---- driving the dataflow's two stages in-process ---------------------------------------

SHARDS: Final = 4


class Clock:
    """The dataflow's wall clock, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


def exercising_config() -> ActiveConfig:
    """A configuration whose rules read the hostile values: property and trait conditions, dates, totals."""
    price_over = PropertyCondition("price", "gt", 100)
    return ActiveConfig(
        version=1,
        scoring_rules=[
            ScoringRule(id="big-add", match=EventMatch("Product Added", [price_over]), points=3.0),
            ScoringRule(id="order", match=EventMatch("Order Completed"), points=20.0, mode="at_most",
                        max_times=2, per_window_s=DAY),
            ScoringRule(id="any-page", match=EventMatch("page"), points=1.0, mode="once"),
        ],
        absence_rules=[AbsenceRule(id="no-click", after=EventMatch("Email Opened"),
                                   expect=EventMatch("Email Link Clicked"), within_s=3600.0, points=-5.0,
                                   correlate_on="email_id")],
        tag_rules=[TagRule(EventMatch("Product Viewed", [PropertyCondition("category", "in", ["shoes", "bags"])]),
                           "browser"),
                   TagRule(EventMatch("identify", [PropertyCondition("email", "contains", "@")]), "has-email"),
                   TagRule(EventMatch("Unsubscribed"), "browser", remove=True)],
        segments=[
            SegmentDef("vip", AnyOf([Trait("loyalty_points", "gte", 1000), Total("revenue", "gte", 500.0)])),
            SegmentDef("birthday", Anniversary("birthday", within_days=30)),
            SegmentDef("carts", Cart(min_value=10.0, min_age_s=600.0)),
            SegmentDef("shoes", WindowCount("category", "shoes", 7 * DAY, "gte", 1, "Product Viewed")),
        ],
    )


def _grouped(items: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for key, value in items:
        groups[key].append(value)
    return groups


@dataclass
class Stages:
    """Both stateful stages of the dataflow, one logic per contact shard, wired as `flow.build_flow` does."""

    clock: Clock
    loader: ConfigLoader
    hot: int
    visitors: dict[str, Any] = field(default_factory=dict)
    contacts: dict[str, Any] = field(default_factory=dict)
    resumes: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"visitors": {}, "contacts": {}})

    def _config(self) -> ContactConfig:
        return ContactConfig(contact_shards=SHARDS, hot_contacts_per_shard=self.hot)

    def _visitor(self, key: str) -> Any:
        if key not in self.visitors:
            builder = visitor_logic(self._config(), self.loader, self.clock)
            self.visitors[key] = builder(self.resumes["visitors"].pop(key, None))
        return self.visitors[key]

    def _contact(self, key: str) -> Any:
        if key not in self.contacts:
            builder = contact_logic(self._config(), self.loader, self.clock)
            self.contacts[key] = builder(self.resumes["contacts"].pop(key, None))
        return self.contacts[key]

    def feed(self, items: Sequence[Event | ConfigControl]) -> list[Any]:
        """One activation of every shard the items reach; the outputs bound for the sink."""
        route = visitor_router(SHARDS)
        sink: list[Any] = []
        onward: list[tuple[str, Any]] = []
        for key, values in _grouped(pair for item in items for pair in route(item)).items():
            out, _ = self._visitor(key).on_batch(values)
            for value in out:
                (onward if _is_onward(value) else sink).append((key, value))
        to_contacts = contact_router(SHARDS)
        for key, values in _grouped(to_contacts(pair) for pair in onward).items():
            out, _ = self._contact(key).on_batch(values)
            sink += [(key, value) for value in out]
        return [value for _, value in sink]

    def fire_timers(self) -> list[Any]:
        """Every due timer, as Bytewax calls `on_notify` once `notify_at` has passed."""
        sink: list[Any] = []
        for logic in [*self.visitors.values(), *self.contacts.values()]:
            for _ in range(10):
                due = logic.notify_at()
                if due is None or due.timestamp() > self.clock.now:
                    break
                out, _ = logic.on_notify()
                sink += list(out)
        return sink

    def snapshot_and_resume(self) -> None:
        """What a crash and a restart from the last snapshot do: every shard starts again from its snapshot."""
        self.resumes = {"visitors": {k: v.snapshot() for k, v in self.visitors.items()},
                        "contacts": {k: v.snapshot() for k, v in self.contacts.items()}}
        self.visitors, self.contacts = {}, {}
        for key in list(self.resumes["visitors"]):
            self._visitor(key)
        for key in list(self.resumes["contacts"]):
            self._contact(key)


def _is_onward(value: Any) -> bool:
    return isinstance(value, Routed | Handoff | ShardControl)


def stages(now: datetime, hot: int) -> Stages:
    loader = ConfigLoader(None)
    loader.put(exercising_config())
    return Stages(Clock(now), loader, hot)


def check_outputs(outputs: Iterable[Any]) -> None:
    """Nothing quarantined; every profile and decision decodes, and survives the API's re-encoding."""
    for output in outputs:
        assert not isinstance(output, Quarantined), f"quarantined: {output.record}"
        if isinstance(output, ProfileWrite):
            profile = decode_profile(output.profile_json)
            assert decode_profile(encode_profile(profile)) == profile
        elif isinstance(output, DecisionPush):
            msgspec.json.decode(output.decision_json, type=Decisions)


def final_profiles(outputs: Iterable[Any]) -> dict[str, Profile]:
    """What Redis holds after the sink applied `outputs` in order."""
    held: dict[str, Profile] = {}
    for output in outputs:
        if isinstance(output, ProfileWrite):
            held[output.contact_id] = decode_profile(output.profile_json)
        elif isinstance(output, ProfileDelete):
            held.pop(output.contact_id, None)
    return held


# ---- stories: events of a few visitors and users --------------------------------------

@dataclass
class Story:
    """Raw events of a few visitors and users, in the batches a client sends them."""

    events: list[Generated]
    cuts: list[int]
    resume_after: int
    hot: int


@st.composite
def stories(draw: st.DrawFn, now: datetime, hostile: bool = True, max_events: int = 16) -> Story:
    """Up to `max_events` events of a few visitors and users, cut into batches, with a resume point."""
    anonymous, users = draw(pools())
    count = draw(st.integers(1, max_events))
    events = [draw(raw_events(now, anonymous, users, hostile=hostile, serial=i)) for i in range(count)]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, count - 1)), max_size=3)))
    return Story(events, cuts, draw(st.integers(0, len(cuts) + 1)), draw(st.sampled_from((1, 64))))


validator = EventValidator(Limits())


def accepted_events(story: Story, now: datetime) -> list[Event]:
    """The events of the story the validator accepts, normalised (as they are appended)."""
    out: list[Event] = []
    for generated in story.events:
        batch = validator.validate_all([generated.raw], now, generated.batch_sent_at)
        out += batch.accepted
    return out


def batches(events: list[Event], cuts: list[int]) -> list[list[Event]]:
    """The events cut at `cuts` into the batches of successive activations."""
    edges = [0, *[c for c in cuts if c < len(events)], len(events)]
    return [events[a:b] for a, b in itertools.pairwise(edges) if b > a]


def run(story: Story, events: list[Event], now: datetime, resume_after: int | None) -> tuple[Stages, list[Any]]:
    """Feed the events batch by batch, resuming from a snapshot before batch `resume_after` (or at the end)."""
    flow = stages(now, story.hot)
    outputs = flow.feed([ConfigControl(1)])
    for index, batch in enumerate(batches(events, story.cuts)):
        if index == resume_after:
            flow.snapshot_and_resume()
        outputs += flow.feed(batch)
    if resume_after is not None and resume_after >= len(batches(events, story.cuts)):
        flow.snapshot_and_resume()
    return flow, outputs


# ---- the properties -----------------------------------------------------------------------

def assert_verdict(generated: Generated, now: datetime) -> Event | None:
    """The validator accepts exactly the events without faults; others get a precise, matching reason."""
    batch = validator.validate_all([generated.raw], now, generated.batch_sent_at)
    if not generated.faults:
        assert not batch.rejected, f"refused a good event: {batch.rejected[0].error}\n{generated.raw[:2000]!r}"
        return batch.accepted[0]
    assert not batch.accepted, f"accepted an event with faults {sorted(generated.faults)}: {generated.raw[:2000]!r}"
    reason = batch.rejected[0].error
    assert PRECISE.search(reason), f"imprecise reason {reason!r}"
    patterns = [FAULT_REASONS[f] for f in generated.faults]
    assert any(re.search(p, reason) for p in patterns), (
        f"reason {reason!r} names none of the faults {sorted(generated.faults)}: {generated.raw[:2000]!r}")
    return None


class TestValidatorVerdicts:
    """The validator accepts exactly the well-formed events and names what is wrong with the others."""

    @fuzz_settings(200)
    @given(raw_events(FIXED_NOW))
    def test_each_event_is_accepted_or_refused_with_the_reason_for_its_fault(self, generated: Generated) -> None:
        """Good events pass; each hostile value is refused with a reason naming its field or limit."""
        assert_verdict(generated, FIXED_NOW)

    @pytest.mark.parametrize("mutation", HOSTILE)
    def test_every_kind_of_hostile_value_gets_its_verdict(self, mutation: str) -> None:
        """Each kind of hostile value, alone or with another, on every type of event: its verdict and reason."""
        @fuzz_settings(25)
        @given(raw_events(FIXED_NOW, force=mutation))
        def each(generated: Generated) -> None:
            assert_verdict(generated, FIXED_NOW)

        each()

    @fuzz_settings(150)
    @given(raw_events(FIXED_NOW, hostile=False))
    def test_well_formed_events_of_every_type_are_accepted(self, generated: Generated) -> None:
        """No well-formed Segment event is refused (unicode, odd ids, any offset, any in-range number)."""
        assert not generated.faults, generated.faults
        assert_verdict(generated, FIXED_NOW)

    @fuzz_settings(100)
    @given(raw_events(FIXED_NOW))
    def test_an_accepted_event_is_stored_and_read_back_unchanged(self, generated: Generated) -> None:
        """The stream entry of an accepted event decodes to the same event (what the dataflow reads)."""
        event = assert_verdict(generated, FIXED_NOW)
        if event is not None:
            for group in group_by_shard([event, event], SHARDS).values():
                assert decode_entry(encode_entry(group)) == group

    @fuzz_settings(60)
    @given(raw_events(FIXED_NOW))
    def test_internal_event_types_are_unknown_to_the_public_decoder(self, generated: Generated) -> None:
        """No client event decodes as an admin tag or list change."""
        event = assert_verdict(generated, FIXED_NOW)
        assert not isinstance(event, TagsChanged | ListChanged)


class TestAcceptedEventsThroughTheDataflow:
    """Whatever the validator accepts passes both stages, snapshots, resumes and timers without an error."""

    @fuzz_settings(60)
    @given(stories(FIXED_NOW))
    def test_accepted_events_count_once_survive_a_resume_and_are_never_quarantined(self, story: Story) -> None:
        """No quarantine record, a resume changes no output, the profiles count every accepted event once."""
        events = accepted_events(story, FIXED_NOW)
        _, straight = run(story, events, FIXED_NOW, None)
        flow, resumed = run(story, events, FIXED_NOW, story.resume_after)
        check_outputs(straight)
        assert resumed == straight
        held = final_profiles(resumed)
        counted = sum(p.counters.events for p in held.values())
        assert counted == len(events), (
            f"{len(events)} accepted, {counted} counted; lost: {[e for e in events if not _lands(e, held)]}")
        flow.clock.now += 2 * 3600  # carts go idle, absence rules fire, windows move on
        check_outputs(flow.fire_timers())
        flow.snapshot_and_resume()
        flow.clock.now += 400 * DAY  # anonymous visitors are purged
        check_outputs(flow.fire_timers())


def _lands(event: Event, held: dict[str, Profile]) -> bool:
    ids = {event.anonymous_id, event.user_id, getattr(event, "previous_id", None)} - {None}
    return any(i in held or any(i in p.anonymous_ids for p in held.values()) for i in ids)


class TestFoundByGeneration:
    """The smallest examples of what the generated runs found, kept as plain regression tests."""

    def test_an_event_whose_only_id_is_a_blocked_user_id_is_refused(self) -> None:
        """`{"type": "page", "userId": "null"}` would belong to no contact: acked, then dropped, so refused."""
        raw = orjson.dumps({"type": "page", "userId": "null"})
        batch = validator.validate_all([raw], FIXED_NOW)
        assert [r.error for r in batch.rejected] == [
            "`userId` 'null' is not a usable id and there is no `anonymousId`"]

    def test_a_blocked_user_id_beside_an_anonymous_id_is_kept_on_the_visitor(self) -> None:
        """With an anonymousId the event still counts, on the anonymous visitor."""
        raw = orjson.dumps({"type": "page", "userId": "null", "anonymousId": "a1"})
        [event] = validator.validate_all([raw], FIXED_NOW).accepted
        outputs = stages(FIXED_NOW, 64).feed([ConfigControl(1), event])
        assert final_profiles(outputs)["a1"].counters.events == 1

    def test_a_blocked_anonymous_id_never_hands_a_strangers_events_to_a_user(self) -> None:
        """Trackers that send anonymousId "null" for everyone: Ada's login must not adopt them all."""
        raws = [{"type": "identify", "anonymousId": "null", "userId": "ada@example.com"},
                {"type": "track", "anonymousId": "null", "event": "Product Added",
                 "properties": {"product_id": "a-strangers-item", "price": 5}}]
        batch = validator.validate_all([orjson.dumps(r) for r in raws], FIXED_NOW)
        assert [r.error for r in batch.rejected] == [
            "`anonymousId` 'null' is not a usable id and there is no usable `userId`"]
        flow = stages(FIXED_NOW, 64)
        ada = final_profiles(flow.feed([ConfigControl(1)]) + flow.feed(batch.accepted))["ada@example.com"]
        assert (ada.anonymous_ids, ada.cart, ada.counters.events) == ([], [], 1)

    def test_an_alias_from_a_blocked_id_is_refused(self) -> None:
        """alias(previousId="undefined") would link every such visitor to the user."""
        raw = orjson.dumps({"type": "alias", "previousId": "undefined", "userId": "u1"})
        assert [r.error for r in validator.validate_all([raw], FIXED_NOW).rejected] == [
            "`previousId` 'undefined' is not a usable id"]

    @pytest.mark.parametrize(("field", "limit"), [("product_id", 200), ("sku", 200), ("category", 200),
                                                   ("name", 1024)])
    def test_a_product_key_longer_than_its_limit_is_refused(self, field: str, limit: int) -> None:
        """Product ids and categories are keys of the contact's state: 30 KB ones made a 22 MB profile in 300 events."""
        def track(value: object) -> bytes:
            return orjson.dumps({"type": "track", "anonymousId": "a1", "event": "Product Added",
                                 "properties": {field: value, "price": 1}})

        batch = validator.validate_all([track("k" * limit), track("k" * (limit + 1)), track({"id": 1})], FIXED_NOW)
        assert len(batch.accepted) == 1
        assert [r.error for r in batch.rejected] == [
            f"`properties.{field}` is {limit + 1} characters; at most {limit} allowed",
            f"`properties.{field}` must be a string or a number, got dict"]

    def test_an_anonymous_id_equal_to_a_user_id_does_not_overwrite_that_users_profile(self) -> None:
        """A page from a device whose id happens to be a customer's user id leaves the customer's profile intact."""
        raws = [orjson.dumps({"type": "track", "userId": "victim", "event": "Order Completed",
                              "properties": {"revenue": 100}}),
                orjson.dumps({"type": "page", "anonymousId": "victim"})]
        events = validator.validate_all(raws, FIXED_NOW).accepted
        flow = stages(FIXED_NOW, 64)
        outputs = flow.feed([ConfigControl(1)]) + flow.feed(events[:1]) + flow.feed(events[1:])
        held = final_profiles(outputs)["victim"]
        assert (held.user_id, held.counters.orders) == ("victim", 1)


OVERFLOWING_CONFIGS: Final[dict[str, tuple[ActiveConfig, list[dict[str, object]]]]] = {
    "points that overflow the score": (
        ActiveConfig(version=1, scoring_rules=[ScoringRule(id="p", match=EventMatch("page"), points=1e308)]),
        [{"type": "page", "anonymousId": "a1"}, {"type": "page", "anonymousId": "a1"}]),
    "an anniversary window beyond the calendar": (
        ActiveConfig(version=1, segments=[SegmentDef("b", Anniversary("birthday", within_days=10**9))]),
        [{"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"birthday": "2000-01-01"}}]),
}


class TestAcceptedConfigurations:
    """A configuration the admin API accepts never makes the dataflow quarantine an event."""

    @pytest.mark.parametrize("name", sorted(OVERFLOWING_CONFIGS))
    def test_an_accepted_configuration_quarantines_no_event(self, name: str) -> None:
        """What `config_problem` (the admin API's check) lets through must run: refused, or no quarantine."""
        config, raws = OVERFLOWING_CONFIGS[name]
        if config_problem(config) is not None:
            return  # refused with a reason: nothing reaches the dataflow
        loader = ConfigLoader(None)
        loader.put(config)
        flow = Stages(Clock(FIXED_NOW), loader, 64)
        events = validator.validate_all([orjson.dumps(r) for r in raws], FIXED_NOW).accepted
        check_outputs(flow.feed([ConfigControl(1)]) + flow.feed(events))

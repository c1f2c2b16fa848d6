"""The stages' guard: a step that raises is rolled back and quarantined; nothing stops the stage."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.registry import CAPABILITIES
from dataflows.io.outputs import ProfileWrite, Quarantined, ShardControl
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.contact import Registry
from dataflows.shard.stages import ContactConfig, visitor_logic
from state.events import Event, Identify
from state.profile import Profile, decode_profile
from tests.factories import FIXED_NOW, page, track

T0 = FIXED_NOW.timestamp()


class Faults(msgspec.Struct):
    """The test capability's part: how many events it saw."""

    seen: int = 0


class FaultyCapability(Capability[Faults]):
    """Raises where a test says: at chosen events (after every other capability applied them),
    when evaluating a contact with trait `boom`, or on every tick — a bug's stand-in."""

    name = "faults"
    part = Faults

    def __init__(self) -> None:
        self.poisoned: set[str] = set()
        self.ticks_fail = False

    def apply(self, part: Faults, event: Event, ctx: Context) -> None:
        part.seen += 1
        if event.message_id in self.poisoned:
            raise RuntimeError("boom")

    def evaluate(self, part: Faults, view: Any) -> Sequence[Any]:
        if view.trait("boom"):
            raise ValueError("cannot evaluate")
        return ()

    def tick(self, part: Faults, ctx: Context) -> None:
        if self.ticks_fail:
            raise RuntimeError("timer bug")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


FAULTY = FaultyCapability()
REGISTRY = Registry([*CAPABILITIES, FAULTY])


def visitors(clock: Clock | None = None, resume: bytes | None = None) -> Any:
    config = ContactConfig(cart_idle_s=60, registry=REGISTRY)
    return visitor_logic(config, ConfigLoader(None), clock or Clock())(resume)


def profiles(outputs: Iterable[object]) -> dict[str, Profile]:
    return {o.contact_id: decode_profile(o.profile_json) for o in outputs if isinstance(o, ProfileWrite)}


def quarantined(outputs: Iterable[object]) -> list[Quarantined]:
    return [o for o in outputs if isinstance(o, Quarantined)]


@pytest.fixture
def poison_step() -> Iterator[set[str]]:
    """Events whose messageId is in the returned set make applying them raise."""
    yield FAULTY.poisoned
    FAULTY.poisoned.clear()


class TestAFailingStep:
    """An event that makes a step raise costs only itself."""

    def test_it_is_quarantined_and_the_contacts_other_events_are_kept(self, poison_step: set[str]) -> None:
        """Events before and after it in the batch count; it does not, not even half."""
        bad = track("a1", "Product Added", product_id="p-bad", price=1.0)
        poison_step.add(bad.message_id or "")
        out, _ = visitors().on_batch([page("a1"), bad, page("a1")])
        profile = profiles(out)["a1"]
        assert profile.counters.page_views == 2 and profile.counters.cart_adds == 0 and profile.cart == []
        (record,) = quarantined(out)
        assert record.record.stage == "visitors" and record.record.contact_id == "a1"
        assert record.record.error == "RuntimeError: boom" and record.record.replayable
        assert msgspec.json.decode(record.record.payload)["messageId"] == bad.message_id

    def test_a_new_contact_whose_only_event_fails_leaves_nothing_behind(self, poison_step: set[str]) -> None:
        """No profile, no half-made contact in the snapshot."""
        bad = page("a9")
        poison_step.add(bad.message_id or "")
        logic = visitors()
        out, _ = logic.on_batch([bad])
        assert not profiles(out) and len(quarantined(out)) == 1
        assert len(logic.s.book) == 0

    def test_the_quarantined_event_applies_once_when_replayed_after_a_fix(self, poison_step: set[str]) -> None:
        """It was never remembered as seen: appended again, it counts (once)."""
        bad = track("a1", "Product Added", product_id="p1", price=1.0)
        poison_step.add(bad.message_id or "")
        logic = visitors()
        logic.on_batch([bad])
        poison_step.clear()
        out, _ = logic.on_batch([bad])
        assert profiles(out)["a1"].counters.cart_adds == 1
        again, _ = logic.on_batch([bad])
        assert not profiles(again)


class TestAStateThatCannotBeStored:
    """What an older version let in (an integer beyond 64 bits) is caught at its step, not at the snapshot."""

    def test_the_event_is_quarantined_and_snapshots_keep_working(self) -> None:
        """The snapshot that once failed at every epoch succeeds; the resumed shard keeps counting."""
        poison = Identify(message_id="poison", anonymous_id="a1", timestamp=FIXED_NOW, received_at=FIXED_NOW,
                          traits={"loyalty_points": 2**70})
        logic = visitors()
        out, _ = logic.on_batch([page("a1"), poison, page("a1")])
        assert profiles(out)["a1"].counters.page_views == 2
        assert "loyalty_points" not in profiles(out)["a1"].traits
        (record,) = quarantined(out)
        assert record.record.id == "visitors:poison" and "OverflowError" in record.record.error
        resumed = visitors(resume=logic.snapshot())
        out, _ = resumed.on_batch([page("a1")])
        assert profiles(out)["a1"].counters.page_views == 3


class TestAFailingEvaluation:
    """A step after which the contact cannot be evaluated is found by replaying the batch step by step."""

    def test_only_the_step_that_breaks_evaluation_is_quarantined(self) -> None:
        breaking = Identify(message_id="breaking", anonymous_id="a1", timestamp=FIXED_NOW,
                            received_at=FIXED_NOW, traits={"boom": True})
        out, _ = visitors().on_batch([page("a1"), breaking, track("a1", "Product Viewed", category="c")])
        profile = profiles(out)["a1"]
        assert profile.counters.page_views == 1 and profile.counters.product_views == 1
        assert [q.record.id for q in quarantined(out)] == ["visitors:breaking"]


class TestAFailingTimer:
    """A deadline whose handling raises is quarantined once and disarmed, not fired forever."""

    def test_it_is_quarantined_and_disarmed_until_the_next_event(self) -> None:
        clock = Clock()
        logic = visitors(clock)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        assert logic.notify_at() == FIXED_NOW + timedelta(seconds=60)
        FAULTY.ticks_fail = True
        clock.now = T0 + 61
        try:
            out, _ = logic.on_notify()
        finally:
            FAULTY.ticks_fail = False
        assert [q.record.stage for q in quarantined(out)] == ["timers"]
        assert logic.notify_at() is None
        logic.on_batch([track("a1", "Product Added", FIXED_NOW + timedelta(seconds=61), product_id="p2",
                              price=5.0)])
        assert logic.notify_at() == FIXED_NOW + timedelta(seconds=121)


class TestAnUnavailableConfiguration:
    """A configuration version that cannot be loaded is quarantined; the shard keeps its version."""

    def test_events_after_it_are_still_processed(self) -> None:
        logic = visitors()
        out, _ = logic.on_batch([ShardControl(7, "3"), page("a1")])
        assert [q.record.stage for q in quarantined(out)] == ["config"]
        assert profiles(out)["a1"].counters.page_views == 1
        assert logic.s.version == 0

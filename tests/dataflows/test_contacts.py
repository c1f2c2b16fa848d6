"""The per-contact operator's logic, driven directly with a fixed clock."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from dataflows.contacts import ContactConfig, _ContactShardLogic
from dataflows.outputs import DecisionPush, ProfileWrite
from state.profile import Profile
from tests.factories import FIXED_NOW, page, track


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = FIXED_NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def profiles(outputs: object) -> dict[str, Profile]:
    return {o.contact_id: msgspec.json.decode(o.profile_json, type=Profile)
            for o in outputs if isinstance(o, ProfileWrite)}  # type: ignore[attr-defined]


class TestEvents:
    """Events update the right contact, once each."""

    def test_a_resent_event_is_counted_once(self) -> None:
        """The tracker resends unacked batches; the same messageId counts once."""
        logic = _ContactShardLogic(ContactConfig(), Clock(), None)
        event = track("a1", "Product Added", product_id="p1", price=5.0)
        logic.on_batch([event])
        out, _ = logic.on_batch([event])
        assert list(out) == []
        snapshot = msgspec.msgpack.decode(logic.snapshot())
        assert snapshot[0]["counters"]["cart_adds"] == 1

    def test_one_profile_per_contact_per_batch(self) -> None:
        """Many events of a contact in one activation write its profile once."""
        logic = _ContactShardLogic(ContactConfig(), Clock(), None)
        out, _ = logic.on_batch([page("a1"), page("a1"), page("a2")])
        written = profiles(out)
        assert sorted(written) == ["a1", "a2"]
        assert written["a1"].counters.page_views == 2

    def test_decision_is_pushed_only_when_it_changes(self) -> None:
        """A visitor's page gets a push when temperature changes, not on every event."""
        logic = _ContactShardLogic(ContactConfig(), Clock(), None)
        first, _ = logic.on_batch([page("a1")])
        second, _ = logic.on_batch([page("a1")])
        assert [o for o in first if isinstance(o, DecisionPush)]
        assert not [o for o in second if isinstance(o, DecisionPush)]


class TestCartTimer:
    """A cart becomes abandoned by the clock alone."""

    def test_cart_is_marked_abandoned_when_idle_time_passes_without_events(self) -> None:
        """notify_at is the idle deadline; on_notify then flips the flag and rewrites the profile."""
        clock = Clock()
        logic = _ContactShardLogic(ContactConfig(cart_idle_s=60), clock, None)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        assert logic.notify_at() == FIXED_NOW + timedelta(seconds=60)
        clock.now += 59
        early, _ = logic.on_notify()
        assert list(early) == []
        clock.now += 1
        out, _ = logic.on_notify()
        assert profiles(out)["a1"].extra == {"cart_abandoned": True}
        assert logic.notify_at() is None

    def test_a_cart_event_before_the_deadline_postpones_it(self) -> None:
        """Touching the cart restarts the idle time."""
        clock = Clock()
        logic = _ContactShardLogic(ContactConfig(cart_idle_s=60), clock, None)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        later = FIXED_NOW + timedelta(seconds=30)
        logic.on_batch([track("a1", "Product Added", later, product_id="p2", price=5.0)])
        clock.now += 60
        out, _ = logic.on_notify()
        assert list(out) == []
        assert logic.notify_at() == later + timedelta(seconds=60)

    def test_timers_survive_a_snapshot_and_resume(self) -> None:
        """After recovery the pending deadline is asked for again and fires."""
        clock = Clock()
        logic = _ContactShardLogic(ContactConfig(cart_idle_s=60), clock, None)
        logic.on_batch([track("a1", "Product Added", product_id="p1", price=5.0)])
        resumed = _ContactShardLogic(ContactConfig(cart_idle_s=60), clock, logic.snapshot())
        assert resumed.notify_at() == FIXED_NOW + timedelta(seconds=60)
        clock.now += 61
        out, _ = resumed.on_notify()
        assert profiles(out)["a1"].extra == {"cart_abandoned": True}

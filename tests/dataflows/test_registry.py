"""A capability is one unit: defined here alone, registered, and the shard does the rest.

`Stamps` exists only in this file. Registered next to the built-in
capabilities, it is applied to events, merged on identify, snapshotted and
restored, given its deadline and tick, and rendered in the profile (under
`extensions`, since `state.profile.Profile` has no field for it) — with no
other module edited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.registry import CAPABILITIES
from dataflows.io.outputs import Handoff, ProfileWrite, Routed
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.contact import Registry
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state.events import Event, Identify, Track
from state.profile import Profile, decode_profile
from tests.factories import FIXED_NOW, page, track

T0 = FIXED_NOW.timestamp()
EXPIRY_S = 60.0


class Stamps(msgspec.Struct, array_like=True):
    """Loyalty stamps: one per order; all of them expire a minute after the last."""

    count: int = 0
    last_at: float | None = None
    expired: int = 0


class StampsCapability(Capability[Stamps]):
    """A capability a shop might add: a stamp card that empties itself when unused."""

    name = "stamps"
    part = Stamps

    def apply(self, part: Stamps, event: Event, ctx: Context) -> None:
        if isinstance(event, Track) and event.event == "Order Completed":
            part.count += 1
            part.last_at = ctx.at

    def tick(self, part: Stamps, ctx: Context) -> None:
        if part.last_at is not None and ctx.now >= part.last_at + EXPIRY_S:
            part.expired += part.count
            part.count, part.last_at = 0, None

    def merge(self, into: Stamps, other: Stamps, ctx: Context) -> None:
        into.count += other.count
        into.last_at = max(t for t in (into.last_at, other.last_at, 0.0) if t is not None) or None

    def due(self, part: Stamps, view: Any) -> float | None:
        return None if part.last_at is None else part.last_at + EXPIRY_S

    def render(self, part: Stamps, view: Any) -> Mapping[str, Any]:
        return {"stamps": {"count": part.count, "expired": part.expired}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def profiles(outputs: Iterable[object]) -> dict[str, Profile]:
    return {o.contact_id: decode_profile(o.profile_json) for o in outputs if isinstance(o, ProfileWrite)}


def order(who: str, seconds: float = 0, user_id: str | None = None) -> Track:
    return track(who, "Order Completed", FIXED_NOW + timedelta(seconds=seconds), user_id=user_id, revenue=1.0)


class TestACapabilityDefinedInATestFile:
    """Registered with the built-ins, it takes part in everything the shard does."""

    def setup_method(self) -> None:
        self.clock = Clock()
        self.config = ContactConfig(registry=Registry([*CAPABILITIES, StampsCapability()]), cart_idle_s=3600)
        self.loader = ConfigLoader(None)

    def visitors(self, resume: bytes | None = None) -> Any:
        return visitor_logic(self.config, self.loader, self.clock)(resume)

    def test_it_is_applied_and_rendered_in_the_profile(self) -> None:
        out, _ = self.visitors().on_batch([order("a1"), page("a1"), order("a1", 1)])
        profile = profiles(out)["a1"]
        assert profile.extensions == {"stamps": {"count": 2, "expired": 0}}
        assert profile.counters.orders == 2  # the built-ins are untouched

    def test_it_survives_a_snapshot_and_a_restore(self) -> None:
        logic = self.visitors()
        logic.on_batch([order("a1")])
        resumed = self.visitors(resume=logic.snapshot())
        out, _ = resumed.on_batch([order("a1", 2)])
        assert profiles(out)["a1"].extensions["stamps"]["count"] == 2

    def test_its_deadline_arms_the_timer_and_its_tick_runs_on_time(self) -> None:
        logic = self.visitors()
        logic.on_batch([order("a1")])
        self.clock.now = T0 + EXPIRY_S - 1  # other deadlines (the score's temperature) fire first
        out, _ = logic.on_notify()
        assert profiles(out)["a1"].extensions["stamps"] == {"count": 1, "expired": 0}
        assert logic.notify_at() == FIXED_NOW + timedelta(seconds=EXPIRY_S)
        self.clock.now = T0 + EXPIRY_S
        out, _ = logic.on_notify()
        assert profiles(out)["a1"].extensions["stamps"] == {"count": 0, "expired": 1}

    def test_it_is_merged_when_a_visitor_identifies(self) -> None:
        visitors = self.visitors()
        contacts = contact_logic(self.config, self.loader, self.clock)(None)
        visitors.on_batch([order("a1"), order("a1", 1)])
        login = Identify(message_id="login", anonymous_id="a1", user_id="u1", timestamp=FIXED_NOW,
                         received_at=FIXED_NOW)
        out, _ = visitors.on_batch([login, order("a1", 2, user_id="u1")])
        merged, _ = contacts.on_batch([o for o in out if isinstance(o, Routed | Handoff)])
        assert profiles(merged)["u1"].extensions["stamps"]["count"] == 3

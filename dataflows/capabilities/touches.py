"""The contact's touches — workflow messages and popup impressions — and the caps they count against.

One ledger per contact, read and written by both workflows and popups, so
that one frequency policy (`state.workflows.MessagingPolicy`) governs them
together: `caps` allows one touch of a channel per rolling window (`popup`
is the channel of popup impressions), and `shared_cap` allows a number of
touches per window across channels. A popup shown an hour ago therefore
holds an e-mail under a 16 h shared cap, and an e-mail holds popups.

A workflow records a message when it decides to send it (`record_touch`, at
the clock); a popup impression is recorded when the tracker's `Popup Shown`
event arrives (at its event time), if it names a campaign and variant the
configuration knows — a client inventing impressions only caps itself, and
at most `MAX_TOUCHES` are kept.
"""

from __future__ import annotations

from typing import Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from state.campaigns import POPUP_CHANNEL
from state.decisions import POPUP_SHOWN
from state.events import Event, Track
from state.workflows import MessagingPolicy

MAX_TOUCHES: Final = 100
"""Touches kept per contact: the most a shared cap may allow per window."""


class Touches(msgspec.Struct, array_like=True, gc=False):
    """When the contact was last touched on each channel, and its recent touches (time, channel), oldest first."""

    last: dict[str, float] = msgspec.field(default_factory=dict)
    recent: list[tuple[float, str]] = msgspec.field(default_factory=list)


def record_touch(touches: Touches, channel: str, at: float) -> None:
    """Count a message or an impression of `channel` at `at`."""
    if at > touches.last.get(channel, float("-inf")):
        touches.last[channel] = at
    recent = touches.recent
    recent.append((at, channel))
    if len(recent) > 1 and at < recent[-2][0]:  # a late impression: keep time order
        recent.sort(key=lambda touch: touch[0])
    if len(recent) > MAX_TOUCHES:
        del recent[:-MAX_TOUCHES]


def cap_frees_at(touches: Touches, channel: str, now: float, policy: MessagingPolicy) -> float | None:
    """When a touch of `channel` will be within every cap, if it is not at `now`; None when it may go now."""
    until: float | None = None
    window = policy.caps.get(channel)
    last = touches.last.get(channel)
    if window is not None and last is not None and now - last < window:
        until = last + window
    shared = policy.shared_cap
    if shared is not None and shared.counts(channel):
        counted = [at for at, ch in touches.recent if shared.counts(ch) and now - at < shared.window_s]
        if len(counted) >= shared.max_touches:
            # The oldest touch that keeps the count at the maximum must leave the window first.
            frees = counted[len(counted) - shared.max_touches] + shared.window_s
            until = frees if until is None else max(until, frees)
    return until


def cap_reason(touches: Touches, channel: str, now: float, policy: MessagingPolicy) -> str | None:
    """Why a touch of `channel` is held now (`<channel> frequency cap`, `shared frequency cap`), or None."""
    window = policy.caps.get(channel)
    last = touches.last.get(channel)
    if window is not None and last is not None and now - last < window:
        return f"{channel} frequency cap"
    if cap_frees_at(touches, channel, now, policy) is not None:
        return "shared frequency cap"
    return None


def merge_touches(into: Touches, other: Touches) -> None:
    """A visitor's touches join its contact's: both caps count them."""
    for channel, at in other.last.items():
        into.last[channel] = max(at, into.last.get(channel, at))
    if other.recent:
        into.recent = sorted([*into.recent, *other.recent], key=lambda touch: touch[0])[-MAX_TOUCHES:]


class TouchesCapability(Capability[Touches]):
    """The one frequency ledger of a contact, shared by workflows and popups."""

    name = "touches"
    part = Touches

    def apply(self, part: Touches, event: Event, ctx: Context) -> None:
        if isinstance(event, Track) and event.event == POPUP_SHOWN and ctx.live.campaigns.named(event.properties):
            record_touch(part, POPUP_CHANNEL, ctx.at)

    def merge(self, into: Touches, other: Touches, ctx: Context) -> None:
        merge_touches(into, other)

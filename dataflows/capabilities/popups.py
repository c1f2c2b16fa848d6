"""Popups, decided per contact inside the dataflow: which campaigns the contact may be shown now.

At every evaluation (after the contact's events, or when its deadline
passes) each enabled campaign is asked, highest priority first: does its
targeting hold on the live state, which arm is the contact in, does its
frequency allow it, and do the contact's caps (shared with workflow
messages, `touches`) allow a popup now. What passes is the contact's offer
list (`PopupState.offers`), which the decision document carries to the
page; the tracker then shows at most one per page view when a trigger
fires. The contact's deadline is the earliest moment an answer changes with
time alone: a targeting window or cart age flipping, a cooldown or the
session ending, the cap freeing.

Contacts in a campaign's holdout are never offered it; the moments they
would have been start their conversion window, so the stats can compare
each variant with no popup at all. Every impression, click, close,
conversion and exposed contact is counted exactly per campaign and arm
(`Tally` into `keys.campaign_stats`), summed per campaign by the API.

Registered after `workflows` (it reads the runs and the touches a
workflow's messages of this very evaluation recorded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.popup_rules import NEVER, POPUP_EVENTS, apply_order, apply_popup_event, blocked_until
from dataflows.capabilities.popup_state import MAX_OFFERS, PopupState, Seen, arm_is_valid, draw_arm, merge_popups
from dataflows.capabilities.touches import cap_frees_at
from dataflows.io.outputs import Output, Tally
from dataflows.rules.conditions import evaluate_condition, leaves_flip
from state import events as ev
from state import keys
from state.campaigns import HOLDOUT, POPUP_CHANNEL, Campaign
from state.events import Event, Track

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView


class PopupsCapability(Capability[PopupState]):
    """What each contact has seen of each campaign, and what it is offered now."""

    name = "popups"
    part = PopupState

    def apply(self, part: PopupState, event: Event, ctx: Context) -> None:
        if not isinstance(event, Track):
            return
        if event.event in POPUP_EVENTS:
            apply_popup_event(part, event, ctx)
        elif event.event == ev.ORDER_COMPLETED and part.campaigns:
            apply_order(part, ctx.at, ctx)

    def merge(self, into: PopupState, other: PopupState, ctx: Context) -> None:
        merge_popups(into, other)

    def evaluate(self, part: PopupState, view: StateView) -> Sequence[Output]:
        index = view.live.campaigns
        if not index.enabled and not part.campaigns and not part.offers and not part.notes:
            return ()  # no campaign, nothing seen: one check per evaluation
        out: list[Output] = [Tally(keys.campaign_stats(c), counter) for c, counter in part.notes]
        part.notes.clear()
        for gone in [c for c in part.campaigns if c not in index.by_id]:
            del part.campaigns[gone]  # a deleted campaign: its counts stay in its stats
        offers: list[tuple[str, str]] = []
        deadlines: list[float] = []
        now = view.now
        capped = cap_frees_at(view.part("touches"), POPUP_CHANNEL, now, view.live.config.messaging) \
            if index.enabled else None
        if capped is not None:
            deadlines.append(capped)  # no popup (and no holdout exposure) before; everything is asked again then
        elif index.enabled:
            sessions, windows = view.part("sessions"), view.live.config.windows
            if (flip := leaves_flip(index.leaves, view)) is not None:
                deadlines.append(flip)
            for campaign in index.enabled:
                seen = part.campaigns.get(campaign.id)
                until = blocked_until(seen, campaign, now, sessions, windows)  # cheaper than targeting: first
                if until is not None:
                    if until != NEVER:
                        deadlines.append(until)
                    continue
                if campaign.when is not None and not evaluate_condition(campaign.when, view, view.members):
                    continue
                arm = self._arm(seen, campaign, view.state.contact_id)
                if arm == HOLDOUT:
                    out.extend(self._hold_out(part, seen, campaign, now))
                elif len(offers) < MAX_OFFERS:
                    offers.append((campaign.id, arm))
        part.offers = offers
        part.next_at = min(deadlines, default=None)
        return out

    @staticmethod
    def _arm(seen: Seen | None, campaign: Campaign, contact_id: str) -> str:
        """The contact's arm: the one it was given, unless the campaign no longer has it; else drawn."""
        if seen is not None and seen.arm and arm_is_valid(seen.arm, campaign):
            return seen.arm
        arm = draw_arm(contact_id, campaign)
        if seen is not None:
            seen.arm = arm
        return arm

    @staticmethod
    def _hold_out(part: PopupState, seen: Seen | None, campaign: Campaign, now: float) -> list[Output]:
        """A holdout contact would be offered the campaign now: its conversion window (re)starts."""
        if seen is None:
            seen = part.campaigns[campaign.id] = Seen(arm=HOLDOUT)
        seen.shown_at = now
        if seen.exposed:
            return []
        seen.exposed = True
        return [Tally(keys.campaign_stats(campaign.id), f"contacts:{HOLDOUT}")]

    def due(self, part: PopupState, view: StateView) -> float | None:
        return part.next_at

    def render(self, part: PopupState, view: StateView) -> Mapping[str, Any]:
        if not part.campaigns:
            return {}
        # For operators (the profile's `extensions.popups`): each campaign's arm and what was seen, set fields only.
        return {"popups": {campaign_id: {name: value for name, value in msgspec.structs.asdict(seen).items() if value}
                           for campaign_id, seen in part.campaigns.items()}}

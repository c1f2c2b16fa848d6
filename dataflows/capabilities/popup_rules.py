"""What popup events do to a contact, and whether a campaign's frequency lets it be offered now.

The tracker reports `Popup Shown` / `Popup Clicked` / `Popup Closed` with
the `campaign` and `variant` it was given; those properties come from a
browser, so an event counts only when it names a campaign of the
configuration and one of its variants, and the variant is the contact's arm
(or the contact has none yet). Anything else is refused — counted in the
dataflow's metric `popup_events_refused`, never an error.

An order converts every campaign whose window is open: within
`conversion_window_s` after the contact's last impression (or click, with
`conversion_after: "click"`; for the holdout, after the last moment it
would have been offered), once per contact and campaign.
"""

from __future__ import annotations

from typing import Final

from dataflows.capabilities.base import Context
from dataflows.capabilities.popup_state import PopupState, Seen
from dataflows.capabilities.sessions import SessionState, session_ends_at
from state.campaigns import HOLDOUT, Campaign
from state.config import WindowSettings
from state.decisions import POPUP_CLICKED, POPUP_CLOSED, POPUP_SHOWN
from state.events import Track

NEVER: Final = float("inf")
"""A frequency rule that will never allow the campaign again (closed for good, converted)."""
POPUP_EVENTS: Final = frozenset((POPUP_SHOWN, POPUP_CLICKED, POPUP_CLOSED))
SESSION_OVER_S: Final = 0.001
"""How long after a session's last instant the contact counts as between visits."""
COUNTERS: Final = {POPUP_SHOWN: "impressions", POPUP_CLICKED: "clicks", POPUP_CLOSED: "closes"}


def apply_popup_event(part: PopupState, event: Track, ctx: Context) -> None:
    """Count an impression, click or close of a campaign the contact was offered."""
    named = ctx.live.campaigns.named(event.properties)
    if named is None:
        ctx.count("popup_events_refused")
        return
    campaign, variant = named
    seen = part.campaigns.get(campaign.id)
    if seen is None:
        seen = part.campaigns[campaign.id] = Seen(arm=variant)
    elif not seen.arm:
        seen.arm = variant
    elif seen.arm != variant:  # a stale page, or a forged event: the contact is in another arm
        ctx.count("popup_events_refused")
        return
    at = ctx.at
    name = event.event
    if name == POPUP_SHOWN:
        seen.impressions += 1
        seen.shown_at = max(seen.shown_at, at)
        if not seen.exposed:
            seen.exposed = True
            part.notes.append((campaign.id, f"contacts:{variant}"))
    elif name == POPUP_CLICKED:
        seen.clicked_at = max(seen.clicked_at, at)
    else:
        seen.closed_at = max(seen.closed_at, at)
    part.notes.append((campaign.id, f"{COUNTERS[name]}:{variant}"))


def apply_order(part: PopupState, at: float, ctx: Context) -> None:
    """An order at `at`: every campaign whose conversion window is open converts (once per contact)."""
    for campaign_id, seen in part.campaigns.items():
        campaign = ctx.live.campaigns.by_id.get(campaign_id)
        if campaign is None or seen.converted_at or not seen.arm:
            continue
        clicks = campaign.conversion_after == "click" and seen.arm != HOLDOUT
        start = seen.clicked_at if clicks else seen.shown_at
        if start and 0 <= at - start <= campaign.conversion_window_s:
            seen.converted_at = at
            part.notes.append((campaign_id, f"conversions:{seen.arm}"))


def blocked_until(seen: Seen | None, campaign: Campaign, now: float, sessions: SessionState,
                  windows: WindowSettings) -> float | None:
    """Until when the campaign's frequency keeps it from the contact (`NEVER`), or None when it may be offered."""
    if seen is None:
        return None
    rules = campaign.frequency
    if (seen.converted_at and rules.stop_after_conversion) or (seen.closed_at and rules.stop_after_close) \
            or (rules.max_impressions is not None and seen.impressions >= rules.max_impressions):
        return NEVER
    until: list[float] = []
    if seen.closed_at and now < seen.closed_at + rules.cooldown_after_close_s:
        until.append(seen.closed_at + rules.cooldown_after_close_s)
    if seen.impressions and now < seen.shown_at + rules.min_interval_s:
        until.append(seen.shown_at + rules.min_interval_s)
    if rules.once_per_session and seen.impressions and seen.shown_at >= sessions.started_at:
        ends = session_ends_at(sessions, windows)
        if ends is not None and now <= ends:  # exactly at its end the session still runs
            until.append(ends + SESSION_OVER_S)  # the next visit may see it again
    return max(until, default=None)

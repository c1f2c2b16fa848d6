"""A contact's part of the popups: per campaign, its arm and what it saw, clicked, closed, converted on.

Kept small and flat (it is in every snapshot): a `Seen` exists only for a
campaign the contact was shown (or, in the holdout, would have been
offered), so a targeted contact that never saw a popup costs nothing. The
arm — a variant or the holdout — is drawn from a hash of the contact and the
campaign the first time it matters and kept from then on, so a visitor who
logs in keeps the variant it saw.
"""

from __future__ import annotations

from typing import Final

import msgspec
import xxhash

from state.campaigns import HOLDOUT, Campaign

MAX_OFFERS: Final = 5
"""The most popups one decision document offers (the tracker shows one per page view)."""


class Seen(msgspec.Struct, array_like=True, gc=False):
    """One campaign as one contact met it (times are event time; 0 means never)."""

    arm: str = ""
    impressions: int = 0
    # The last impression; for the holdout, the last moment it would have been offered.
    shown_at: float = 0.0
    clicked_at: float = 0.0
    closed_at: float = 0.0
    converted_at: float = 0.0
    # Counted among the arm's contacts (`contacts:<arm>`) already.
    exposed: bool = False


class PopupState(msgspec.Struct, array_like=True):
    """The popups part of a contact."""

    campaigns: dict[str, Seen] = msgspec.field(default_factory=dict)
    # What the contact is offered now, highest priority first: (campaign id, variant id).
    offers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    # Stats to count at the next evaluation (events are applied where no output can leave): (campaign, counter).
    notes: list[tuple[str, str]] = msgspec.field(default_factory=list)
    # When what the contact is offered may next change with time alone.
    next_at: float | None = None


_HALF: Final = 1 << 32


def draw_arm(contact_id: str, campaign: Campaign) -> str:
    """The arm a contact is in: the holdout for `holdout_percent` of contacts, else a variant by weight.

    One 64-bit hash of (contact, campaign), read as two independent halves —
    one for the holdout, one for the variant — so changing the holdout's
    share does not move contacts between variants.
    """
    variants = campaign.variants
    if not campaign.holdout_percent and len(variants) == 1:
        return variants[0].id  # nothing to draw: the hot path of a plain campaign
    digest = xxhash.xxh3_64_intdigest(f"{contact_id}|{campaign.id}".encode())
    if (digest & (_HALF - 1)) / _HALF * 100 < campaign.holdout_percent:
        return HOLDOUT
    point = (digest >> 32) / _HALF * sum(v.weight for v in variants)
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant.id
    return variants[-1].id


def arm_is_valid(arm: str, campaign: Campaign) -> bool:
    """Whether a kept arm still exists in the campaign (a variant removed, the holdout set to 0 %)."""
    if arm == HOLDOUT:
        return campaign.holdout_percent > 0
    return campaign.variant(arm) is not None


def merge_seen(into: Seen, other: Seen) -> None:
    """One campaign met under two ids (a visitor and the contact it logs in as): one record."""
    into.arm = into.arm or other.arm
    into.impressions += other.impressions
    into.shown_at = max(into.shown_at, other.shown_at)
    into.clicked_at = max(into.clicked_at, other.clicked_at)
    into.closed_at = max(into.closed_at, other.closed_at)
    into.converted_at = max(into.converted_at, other.converted_at)
    into.exposed = into.exposed or other.exposed


def merge_popups(into: PopupState, other: PopupState) -> None:
    """Fold a visitor's popups part into its known contact's."""
    for campaign_id, seen in other.campaigns.items():
        mine = into.campaigns.get(campaign_id)
        if mine is None:
            into.campaigns[campaign_id] = seen
        else:
            merge_seen(mine, seen)
    into.notes.extend(other.notes)

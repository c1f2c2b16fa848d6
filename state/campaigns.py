"""Popup campaigns as data: content, layout, page triggers, targeting, frequency, variants, conversions.

Marketers write campaigns through the admin API (`/v1/admin/campaigns`);
each is part of the live configuration (`ActiveConfig.campaigns`),
versioned with it. Two places decide about a campaign:

- the dataflow, on the contact's live state: whether the campaign targets
  the contact now (`when`, any `state.conditions.Condition`), which arm the
  contact is in (a variant or the holdout, drawn once per contact and kept),
  and whether frequency allows it (once per session, cooldown after a close,
  never after conversion, the contact's shared cap with workflow messages).
  What passes becomes a `PopupDecision` in the contact's decision document;
- the tracker, in the page: when to show it (`triggers`), and at most one
  popup per page view across all campaigns.

Impressions, clicks and closes come back as the `Popup Shown` / `Popup
Clicked` / `Popup Closed` events; a conversion is an order within
`conversion_window_s` of the contact's last impression (or click, with
`conversion_after: "click"`). Holdout contacts see nothing; their window
starts whenever they would have been offered the popup.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from state.conditions import DAY, Condition, Identifier, Seconds
from state.decisions import Layout, OnArrival, PageTrigger, PopupContent

HOLDOUT: Final = "holdout"
"""The arm of contacts held out of a campaign (a reserved variant id)."""
POPUP_CHANNEL: Final = "popup"
"""The channel a popup impression counts under in the messaging policy's caps."""

MAX_CAMPAIGNS: Final = 50
MAX_VARIANTS: Final = 6
MAX_TRIGGERS: Final = 8

VariantId = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
"""A variant's id: short, no `:` (it is part of stats counter names)."""
Weight = Annotated[float, msgspec.Meta(gt=0, le=1000)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=90)]
Priority = Annotated[int, msgspec.Meta(ge=-1000, le=1000)]

PublicField = Literal["temperature", "stage", "score", "segments", "cart_value", "returning"]
"""Contact fields a campaign may expose to the page (`DecisionDoc.public`); none are by default."""
PUBLIC_FIELDS: Final[tuple[PublicField, ...]] = ("temperature", "stage", "score", "segments", "cart_value",
                                                 "returning")


class Variant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One arm of an A/B/n test: what it shows, its share (`weight`) among the variants."""

    id: VariantId
    content: PopupContent
    weight: Weight = 1.0
    layout: Layout | None = None


class Frequency(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How often one contact may see one campaign.

    Across campaigns, the tracker shows at most one popup per page view, and
    the messaging policy's caps (`MessagingPolicy.caps["popup"]`, the shared
    cap) count impressions with workflow messages.
    """

    once_per_session: bool = True
    # After an impression, wait this long before offering the campaign again (0: no wait).
    min_interval_s: Seconds = 0.0
    # After a close: wait this long (0: no wait), or never offer it again.
    cooldown_after_close_s: Seconds = DAY
    stop_after_close: bool = False
    stop_after_conversion: bool = True
    max_impressions: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class Campaign(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A popup campaign; `version` counts its edits (set by the admin API)."""

    id: Identifier
    variants: Annotated[list[Variant], msgspec.Meta(min_length=1, max_length=MAX_VARIANTS)]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    enabled: bool = True
    layout: Layout = "modal"
    triggers: Annotated[list[PageTrigger], msgspec.Meta(min_length=1, max_length=MAX_TRIGGERS)] = \
        msgspec.field(default_factory=lambda: [OnArrival()])
    # Who is targeted, on the contact's live state; none: everybody.
    when: Condition | None = None
    holdout_percent: Percent = 0.0
    frequency: Frequency = msgspec.field(default_factory=Frequency)
    conversion_window_s: Seconds = 7 * DAY
    conversion_after: Literal["impression", "click"] = "impression"
    priority: Priority = 0
    public: Annotated[list[PublicField], msgspec.Meta(max_length=len(PUBLIC_FIELDS))] = \
        msgspec.field(default_factory=list)
    version: int = 1

    def variant(self, variant_id: str) -> Variant | None:
        """The variant called `variant_id`, or None."""
        return next((v for v in self.variants if v.id == variant_id), None)


def campaign_problem(campaign: Campaign) -> str | None:
    """What in one campaign cannot run, besides its schema and targeting (`state.config_rules`)."""
    ids = [v.id for v in campaign.variants]
    if len(set(ids)) != len(ids):
        return "variant ids must be unique"
    if HOLDOUT in ids:
        return f"{HOLDOUT!r} is the holdout's name, not a variant's"
    if len(set(campaign.public)) != len(campaign.public):
        return "public fields must be unique"
    return None


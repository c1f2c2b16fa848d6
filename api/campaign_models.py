"""Bodies of the campaigns admin API: a campaign as PUT, pages, published and deleted answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from state.campaigns import (
    MAX_TRIGGERS,
    MAX_VARIANTS,
    PUBLIC_FIELDS,
    Campaign,
    Frequency,
    Percent,
    Priority,
    PublicField,
    Variant,
)
from state.conditions import Condition, Identifier, Seconds
from state.decisions import Layout, OnArrival, PageTrigger


class CampaignBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A campaign as PUT: the id comes from the path (a body id must equal it); the version is counted."""

    variants: Annotated[list[Variant], msgspec.Meta(min_length=1, max_length=MAX_VARIANTS)]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    enabled: bool = True
    layout: Layout = "modal"
    triggers: Annotated[list[PageTrigger], msgspec.Meta(min_length=1, max_length=MAX_TRIGGERS)] = \
        msgspec.field(default_factory=lambda: [OnArrival()])
    when: Condition | None = None
    holdout_percent: Percent = 0.0
    frequency: Frequency = msgspec.field(default_factory=Frequency)
    conversion_window_s: Seconds = 7 * 86_400.0
    conversion_after: Literal["impression", "click"] = "impression"
    priority: Priority = 0
    public: Annotated[list[PublicField], msgspec.Meta(max_length=len(PUBLIC_FIELDS))] = \
        msgspec.field(default_factory=list)
    id: Identifier | None = None


class CampaignsPage(msgspec.Struct, frozen=True):
    """Every campaign in force."""

    data: list[Campaign]
    count: int


class CampaignPublished(msgspec.Struct, frozen=True):
    """A campaign was created (`created`) or changed, as configuration `version`."""

    version: int
    campaign: Campaign
    created: bool = False


class CampaignDeleted(msgspec.Struct, frozen=True):
    """A campaign was deleted (its stats stay readable), as configuration `version`."""

    version: int
    deleted: str


def campaign_of(campaign_id: str, body: CampaignBody, version: int) -> Campaign:
    """The campaign a PUT body describes, at `version`."""
    fields: dict[str, Any] = msgspec.structs.asdict(body)
    fields.pop("id")
    return Campaign(id=campaign_id, version=version, **fields)

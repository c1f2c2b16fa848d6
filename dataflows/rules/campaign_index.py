"""A configuration's popup campaigns compiled for the hot path.

Every changed contact asks each enabled campaign whether it targets it, so
the enabled ones are kept in the order offers are made (highest priority
first), with their time-driven targeting leaves gathered once (for the
contact's next deadline) and the union of the fields they make public.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dataflows.rules.conditions import time_leaves
from state.campaigns import PUBLIC_FIELDS, Campaign, PublicField
from state.conditions import Condition
from state.config import ActiveConfig
from state.decisions import PopupDecision


@dataclass(frozen=True, slots=True)
class CampaignIndex:
    """Campaigns by id (enabled or not), the enabled ones by priority, their time leaves and public fields."""

    by_id: dict[str, Campaign] = field(default_factory=dict)
    enabled: tuple[Campaign, ...] = ()
    leaves: tuple[Condition, ...] = ()
    public: tuple[PublicField, ...] = ()
    # What the page is told for each (enabled campaign, variant): built once per configuration.
    decisions: dict[tuple[str, str], PopupDecision] = field(default_factory=dict)

    def named(self, properties: dict[str, Any]) -> tuple[Campaign, str] | None:
        """The campaign and variant a popup event names (from a browser), if both exist; else None."""
        campaign_id, variant = properties.get("campaign"), properties.get("variant")
        campaign = self.by_id.get(campaign_id) if isinstance(campaign_id, str) else None
        if campaign is None or not isinstance(variant, str) or campaign.variant(variant) is None:
            return None
        return campaign, variant

    @classmethod
    def of(cls, config: ActiveConfig) -> CampaignIndex:
        """Index `config.campaigns` (already validated)."""
        enabled = tuple(sorted((c for c in config.campaigns if c.enabled), key=lambda c: (-c.priority, c.id)))
        public = {name for c in enabled for name in c.public}
        decisions = {(c.id, v.id): PopupDecision(campaign=c.id, variant=v.id, layout=v.layout or c.layout,
                                                 triggers=list(c.triggers), content=v.content, priority=c.priority)
                     for c in enabled for v in c.variants}
        return cls({c.id: c for c in config.campaigns}, enabled,
                   time_leaves(c.when for c in enabled if c.when is not None),
                   tuple(name for name in PUBLIC_FIELDS if name in public), decisions)

"""Live configuration as data: scoring rules, thresholds, stages, segments, workflows, popup campaigns.

Marketers change these through the admin API while everything runs. Each
change is stored as a new immutable *version* (`keys.config_version(n)`),
and a control entry naming the version is appended to every ingest stream,
so the dataflow switches at a well-defined position of each stream: a replay
after a crash meets the same switch at the same place and uses the version
that was in force for each event.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from state.campaigns import Campaign
from state.conditions import (
    DAY,
    All,
    Anniversary,
    AnyOf,
    Cart,
    CompareOp,
    Condition,
    Count,
    EventMatch,
    HasTag,
    Identifier,
    InList,
    InSegment,
    InWorkflow,
    NoEventWithin,
    Not,
    PageUrl,
    Points,
    PropertyCondition,
    Returning,
    Rfm,
    Score,
    Seconds,
    StageIs,
    TemperatureIs,
    Total,
    Trait,
    UtmSource,
    WindowCount,
)
from state.workflows import MessagingPolicy, Workflow

# Re-exported: the condition types are part of the configuration's vocabulary.
__all__ = [
    "DAY",
    "All",
    "Anniversary",
    "AnyOf",
    "Cart",
    "CompareOp",
    "Condition",
    "EventMatch",
    "HasTag",
    "Identifier",
    "InList",
    "InSegment",
    "InWorkflow",
    "NoEventWithin",
    "Not",
    "PageUrl",
    "PropertyCondition",
    "Returning",
    "Rfm",
    "Score",
    "Seconds",
    "StageIs",
    "TemperatureIs",
    "Total",
    "Trait",
    "UtmSource",
    "WindowCount",
]


class ScoringRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Points for an event: `once`, every time (`repeatable`) or `at_most` N per window."""

    id: Identifier
    match: EventMatch
    points: Points
    mode: Literal["repeatable", "once", "at_most"] = "repeatable"
    max_times: Count = 1
    per_window_s: Seconds = 0.0
    group: str = "default"


class AbsenceRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Points (usually negative) when `expect` does not follow `after` within `within_s`.

    `correlate_on` names a property that must be equal on both events (for
    example the e-mail id, so that opening one e-mail does not excuse another).
    """

    id: Identifier
    after: EventMatch
    expect: EventMatch
    within_s: Seconds
    points: Points
    correlate_on: str | None = None
    group: str = "default"


class ScoreGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Rules of a group decay together; half-life 0 turns decay off."""

    half_life_s: Seconds = 30 * DAY


class Thresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Temperature tags from the score: cold < warm ≤ … < hot ≤ …"""

    warm: float = 20.0
    hot: float = 50.0


class StageRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The contact is in `stage` when `when` holds; the first matching rule wins."""

    stage: str
    when: Condition


class WindowSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Sliding windows, sessions and lateness (event time)."""

    windows_s: list[Seconds] = msgspec.field(
        default_factory=lambda: [3600.0, DAY, 7 * DAY, 30 * DAY])
    lateness_s: Seconds = 3600.0
    session_idle_s: Seconds = 30 * 60.0
    session_max_s: Seconds = DAY
    max_log_entries: int = 1000


class IdentitySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Guard rails of identity merge and the anonymous purge."""

    max_anonymous_ids: int = 50
    anonymous_ttl_s: Seconds = 395 * DAY



class SegmentDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A named segment: its members are the contacts for which `when` holds."""

    id: Identifier
    when: Condition
    name: str = ""


class TagRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Add (or remove) a tag when an event matches."""

    match: EventMatch
    tag: str
    remove: bool = False


class RfmEdges(msgspec.Struct, frozen=True):
    """Quantile edges (4 each) that cut the contact base into scores 1–5."""

    recency_days: list[float] = msgspec.field(default_factory=lambda: [7.0, 30.0, 90.0, 180.0])
    frequency: list[float] = msgspec.field(default_factory=lambda: [1.0, 2.0, 3.0, 5.0])
    monetary: list[float] = msgspec.field(default_factory=lambda: [50.0, 100.0, 250.0, 500.0])


DEFAULT_POINTS: dict[str, float] = {
    "page": 1.0, "Product Viewed": 2.0, "Product Added": 5.0, "Checkout Started": 10.0,
    "Order Completed": 20.0, "Signed Up": 15.0, "Form Submitted": 10.0,
    "Email Opened": 1.0, "Email Link Clicked": 3.0,
}


def default_scoring_rules() -> list[ScoringRule]:
    """Starter rules, all repeatable: page view +1 … order +20 (ActiveCampaign-style scale)."""
    return [ScoringRule(id=f"default-{name.lower().replace(' ', '-')}", match=EventMatch(name), points=points)
            for name, points in DEFAULT_POINTS.items()]


def default_stage_rules() -> list[StageRule]:
    """Journey stages from behaviour: advocacy > retention > decision > consideration."""
    return [
        StageRule("advocacy", All([Total("orders", "gte", 3), Score("gte", 50.0)])),
        StageRule("retention", Total("orders", "gte", 1)),
        StageRule("decision", AnyOf([Cart(), WindowCount("event", "Checkout Started", 30 * DAY, "gte", 1)])),
        StageRule("consideration", WindowCount("event", "Product Viewed", 30 * DAY, "gte", 2)),
    ]


class ActiveConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One immutable version of everything marketers configure."""

    version: int = 0
    scoring_rules: list[ScoringRule] = msgspec.field(default_factory=default_scoring_rules)
    absence_rules: list[AbsenceRule] = msgspec.field(default_factory=list)
    score_groups: dict[str, ScoreGroup] = msgspec.field(default_factory=lambda: {"default": ScoreGroup()})
    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)
    stages: list[StageRule] = msgspec.field(default_factory=default_stage_rules)
    tag_rules: list[TagRule] = msgspec.field(default_factory=list)
    segments: list[SegmentDef] = msgspec.field(default_factory=list)
    windows: WindowSettings = msgspec.field(default_factory=WindowSettings)
    identity: IdentitySettings = msgspec.field(default_factory=IdentitySettings)
    rfm: RfmEdges = msgspec.field(default_factory=RfmEdges)
    workflows: list[Workflow] = msgspec.field(default_factory=list)
    # Earlier versions of workflows that contacts may still be inside (they finish on them).
    retired_workflows: list[Workflow] = msgspec.field(default_factory=list)
    messaging: MessagingPolicy = msgspec.field(default_factory=MessagingPolicy)
    # Popup campaigns (`state.campaigns`): targeted and capped in the dataflow, shown by the tracker.
    campaigns: list[Campaign] = msgspec.field(default_factory=list)


_decoder = msgspec.json.Decoder(ActiveConfig)


def decode_config(raw: bytes) -> ActiveConfig:
    """JSON → ActiveConfig, validating every rule and condition."""
    return _decoder.decode(raw)


def encode_config(config: ActiveConfig) -> bytes:
    """ActiveConfig → JSON."""
    return msgspec.json.encode(config)

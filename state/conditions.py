"""Conditions: which events a rule is about, and the condition trees segments, stages and workflows test.

Shared by the configuration parts that match events (`EventMatch`) or test
a contact's live state (`Condition`): segments, stage rules, workflow
branches and goals, and popup campaigns' targeting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from state.profile import TOTAL_FIGURES

# Bounds that keep every figure a rule can produce finite (a year of seconds is 3.2e7).
Seconds = Annotated[float, msgspec.Meta(ge=0, le=100 * 365 * 86_400)]
Points = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
CompareOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]

DAY = 86_400.0


class PropertyCondition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`properties[name] <op> value` on the event (or `traits` for identify)."""

    name: str
    op: CompareOp = "eq"
    value: Any = None


class EventMatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which events a rule is about: a name (`page` for page views) and conditions."""

    event: str
    where: list[PropertyCondition] = msgspec.field(default_factory=list)



# ---- segment condition tree -------------------------------------------------

class All(msgspec.Struct, frozen=True, tag="all", tag_field="kind", forbid_unknown_fields=True):
    """Every child holds."""

    of: list[Condition]


class AnyOf(msgspec.Struct, frozen=True, tag="any", tag_field="kind", forbid_unknown_fields=True):
    """At least one child holds."""

    of: list[Condition]


class Not(msgspec.Struct, frozen=True, tag="not", tag_field="kind", forbid_unknown_fields=True):
    """The child does not hold."""

    of: Condition


class Trait(msgspec.Struct, frozen=True, tag="trait", tag_field="kind", forbid_unknown_fields=True):
    """A custom field from `identify`: `traits[name] <op> value`."""

    name: str
    op: CompareOp = "eq"
    value: Any = None


class HasTag(msgspec.Struct, frozen=True, tag="tag", tag_field="kind", forbid_unknown_fields=True):
    """The contact carries the tag."""

    tag: str


class InList(msgspec.Struct, frozen=True, tag="list", tag_field="kind", forbid_unknown_fields=True):
    """The contact is an explicit member of the list."""

    list: str


class Score(msgspec.Struct, frozen=True, tag="score", tag_field="kind", forbid_unknown_fields=True):
    """The decayed score, read now: `score <op> value`."""

    op: CompareOp
    value: float


class TemperatureIs(msgspec.Struct, frozen=True, tag="temperature", tag_field="kind",
                    forbid_unknown_fields=True):
    """Temperature is one of `values` (cold, warm, hot)."""

    values: list[str]


class StageIs(msgspec.Struct, frozen=True, tag="stage", tag_field="kind", forbid_unknown_fields=True):
    """Journey stage is one of `values`."""

    values: list[str]


class WindowCount(msgspec.Struct, frozen=True, tag="count", tag_field="kind", forbid_unknown_fields=True):
    """How often something happened in the last `window_s`.

    `dimension` is `event` (event name; `page` for page views), `category`
    (product category of product events) or `product` (product id).
    Example: viewed category shoes ≥ 3 times in 7 d =
    `{"kind": "count", "dimension": "category", "value": "shoes",
    "event": "Product Viewed", "window_s": 604800, "op": "gte", "n": 3}`.
    """

    dimension: Literal["event", "category", "product"]
    value: str
    window_s: Seconds
    op: CompareOp
    n: Count
    event: str | None = None


class NoEventWithin(msgspec.Struct, frozen=True, tag="absent", tag_field="kind", forbid_unknown_fields=True):
    """Absence: no `event` in the last `window_s` (e.g. no order in 90 d).

    `ever_happened` true requires the event to have happened at least once
    before (a lapsed buyer), false also matches contacts who never did it.
    """

    event: str
    window_s: Seconds
    ever_happened: bool = False


class Rfm(msgspec.Struct, frozen=True, tag="rfm", tag_field="kind", forbid_unknown_fields=True):
    """RFM score (1–5) of `part` (`r`, `f`, `m`) compared with `value`."""

    part: Literal["r", "f", "m"]
    op: CompareOp
    value: int


class Cart(msgspec.Struct, frozen=True, tag="cart", tag_field="kind", forbid_unknown_fields=True):
    """Cart state: non-empty, and optionally its value and age bounds."""

    min_value: float | None = None
    max_value: float | None = None
    min_age_s: Seconds | None = None
    max_age_s: Seconds | None = None


class Anniversary(msgspec.Struct, frozen=True, tag="anniversary", tag_field="kind",
                  forbid_unknown_fields=True):
    """The date trait `field` (birthday, signed_up_at) recurs within `within_days` from today (UTC)."""

    field: str
    within_days: Annotated[int, msgspec.Meta(ge=0, le=366)] = 0


class Total(msgspec.Struct, frozen=True, tag="total", tag_field="kind", forbid_unknown_fields=True):
    """An all-time figure: `orders`, `revenue`, `page_views`, `sessions`, `average_order_value` …

    The figure must be one of `state.profile.TOTAL_FIGURES`: a typo is refused,
    not silently compared as 0.
    """

    counter: str
    op: CompareOp
    value: float

    def __post_init__(self) -> None:
        if self.counter not in TOTAL_FIGURES:
            raise ValueError(f"unknown figure {self.counter!r}; one of: {', '.join(TOTAL_FIGURES)}")


class InSegment(msgspec.Struct, frozen=True, tag="segment", tag_field="kind", forbid_unknown_fields=True):
    """Member of another segment (evaluated first; cycles are rejected)."""

    segment: str


ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class UtmSource(msgspec.Struct, frozen=True, tag="utm_source", tag_field="kind", forbid_unknown_fields=True):
    """The current visit came from one of `values` (`utm_source`, compared case-insensitively).

    The source is `context.campaign.source` (Segment's spec) or the page URL's
    `utm_source` parameter, seen during the current session.
    """

    values: Annotated[list[ShortText], msgspec.Meta(min_length=1, max_length=100)]


class PageUrl(msgspec.Struct, frozen=True, tag="page_url", tag_field="kind", forbid_unknown_fields=True):
    """The URL of the contact's latest page view contains `contains` (plain text, case-sensitive)."""

    contains: ShortText


class Returning(msgspec.Struct, frozen=True, tag="returning", tag_field="kind", forbid_unknown_fields=True):
    """A returning visitor (more than one session); `value: false` asks for a new one."""

    value: bool = True


class InWorkflow(msgspec.Struct, frozen=True, tag="workflow", tag_field="kind", forbid_unknown_fields=True):
    """Inside workflow `workflow` now (at step `step`, when given)."""

    workflow: Identifier
    step: Identifier | None = None


Condition = (All | AnyOf | Not | Trait | HasTag | InList | Score | TemperatureIs | StageIs
             | WindowCount | NoEventWithin | Rfm | Cart | Anniversary | Total | InSegment
             | UtmSource | PageUrl | Returning | InWorkflow)


"""The live configuration the live-state benchmark runs under: "everything on".

About what a shop's marketer would set up: ten scoring rules (repeatable,
`once`, `at_most` per window), three absence rules, decay with a 30-day
half-life, three tag rules (one removing a tag), and eight segments that
between them use every kind of leaf the per-contact state has to keep
alive: category counts in sliding windows, absence of an event, cart value
and age, score and temperature, all-time totals, tags and a reference to
another segment. Stage rules stay the defaults.

`buyers` (Total orders ≥ 1) can be computed independently from the load
generator's tally, so the benchmark checks its membership exactly.
"""

from __future__ import annotations

import asyncio

import msgspec
import redis.asyncio as aioredis

from state.config import (
    DAY,
    AbsenceRule,
    ActiveConfig,
    All,
    AnyOf,
    Cart,
    EventMatch,
    HasTag,
    InSegment,
    NoEventWithin,
    Not,
    PropertyCondition,
    Score,
    ScoreGroup,
    ScoringRule,
    SegmentDef,
    TagRule,
    TemperatureIs,
    Total,
    WindowCount,
)
from state.config_store import publish_config

HOUR = 3_600.0
BUYERS = "buyers"
# Probe segments of the latency measurement: only probe contacts view this category.
PROBE_CATEGORY = "probe-only"
PROBE_ENTRY = "probe-entry"
PROBE_EXIT = "probe-exit"
PROBE_EXIT_WINDOW_S = 2.0


def _at_most(rule_id: str, event: str, points: float, times: int, window_s: float) -> ScoringRule:
    return ScoringRule(rule_id, EventMatch(event), points, mode="at_most", max_times=times, per_window_s=window_s)


def scoring_rules() -> list[ScoringRule]:
    """Ten rules: every funnel step, capped where a visitor could farm points."""
    premium = EventMatch("Product Viewed", [PropertyCondition("price", "gte", 50)])
    return [
        ScoringRule("page", EventMatch("page"), 1.0),
        _at_most("product-view", "Product Viewed", 2.0, 10, DAY),
        ScoringRule("premium-view", premium, 3.0),
        _at_most("list-view", "Product List Viewed", 1.0, 5, DAY),
        ScoringRule("add", EventMatch("Product Added"), 5.0),
        _at_most("cart-view", "Cart Viewed", 3.0, 1, DAY),
        _at_most("checkout", "Checkout Started", 10.0, 3, 7 * DAY),
        ScoringRule("order", EventMatch("Order Completed"), 20.0),
        ScoringRule("sign-up", EventMatch("Signed Up"), 15.0, mode="once"),
        _at_most("email-open", "Email Opened", 1.0, 5, 7 * DAY),
    ]


def absence_rules() -> list[AbsenceRule]:
    """Checkout without an order in 1 h, a cart add without checkout in 1 d, sign-up without order in 7 d."""
    return [
        AbsenceRule("checkout-abandoned", EventMatch("Checkout Started"), EventMatch("Order Completed"),
                    HOUR, -10.0),
        AbsenceRule("cart-not-checked-out", EventMatch("Product Added"), EventMatch("Checkout Started"),
                    DAY, -5.0),
        AbsenceRule("signed-up-no-order", EventMatch("Signed Up"), EventMatch("Order Completed"),
                    7 * DAY, -5.0),
    ]


def tag_rules() -> list[TagRule]:
    return [
        TagRule(EventMatch("Signed Up"), "newsletter"),
        TagRule(EventMatch("Checkout Started"), "checkout-pending"),
        TagRule(EventMatch("Order Completed"), "checkout-pending", remove=True),
    ]


def segments() -> list[SegmentDef]:
    """Eight segments over windows, absence, cart, score, totals, tags and another segment."""
    def viewed(category: str, n: int) -> WindowCount:
        return WindowCount("category", category, 7 * DAY, "gte", n, event="Product Viewed")

    return [
        SegmentDef("coffee-lovers", viewed("coffee", 2)),
        SegmentDef("ceramics-browsers", viewed("ceramics", 1)),
        SegmentDef("lapsed-visitors", NoEventWithin("page", 3 * DAY, ever_happened=True)),
        SegmentDef("idle-valuable-cart", Cart(min_value=50.0, min_age_s=HOUR)),
        SegmentDef("hot-leads", AnyOf([TemperatureIs(["hot"]), Score("gte", 40.0)])),
        SegmentDef(BUYERS, Total("orders", "gte", 1)),
        SegmentDef("newsletter-no-order", All([HasTag("newsletter"), Not(Total("orders", "gte", 1))])),
        SegmentDef("vip", All([InSegment(BUYERS),
                               AnyOf([Total("revenue", "gte", 100.0), InSegment("coffee-lovers")])])),
    ]


def probe_segments() -> list[SegmentDef]:
    """Entered by one view of the probe category; the second is left 2 s later by time alone."""
    return [
        SegmentDef(PROBE_ENTRY, WindowCount("category", PROBE_CATEGORY, HOUR, "gte", 1, event="Product Viewed")),
        SegmentDef(PROBE_EXIT, WindowCount("category", PROBE_CATEGORY, PROBE_EXIT_WINDOW_S, "gte", 1,
                                           event="Product Viewed")),
    ]


def everything_on(with_probes: bool = False) -> ActiveConfig:
    """The benchmark's "all of the above on" configuration (default stages)."""
    extra = probe_segments() if with_probes else []
    return ActiveConfig(
        scoring_rules=scoring_rules(),
        absence_rules=absence_rules(),
        score_groups={"default": ScoreGroup(half_life_s=30 * DAY)},
        tag_rules=tag_rules(),
        segments=segments() + extra,
    )


def summary(config: ActiveConfig) -> dict[str, object]:
    """What the report says about the configuration."""
    return {
        "scoring_rules": len(config.scoring_rules),
        "scoring_modes": sorted({r.mode for r in config.scoring_rules}),
        "absence_rules": len(config.absence_rules),
        "half_life_days": {g: s.half_life_s / DAY for g, s in config.score_groups.items()},
        "tag_rules": len(config.tag_rules),
        "segments": [s.id for s in config.segments],
        "stages": [s.stage for s in config.stages],
        "json_bytes": len(msgspec.json.encode(config)),
    }


def publish(redis_url: str, config: ActiveConfig, shards: int) -> int:
    """Publish as the admin API does (a new version, announced on every stream); returns its number."""
    async def go() -> int:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return (await publish_config(client, config, shards)).version
        finally:
            await client.aclose()

    return asyncio.run(go())

"""The ten popup campaigns the popups benchmark runs, and the popup events its shoppers send.

The campaigns (`shop_campaigns`) target between them every kind of live
state a shop leans on — new and returning visitors, a segment, a cart worth
more than 50 left for ten minutes, the temperature, the stage, category
views in a window, a trait, a UTM source or a tag, the page URL — with
variants, holdouts, every page trigger and the default frequency rules. One
targets everybody, so every contact is evaluated against all ten. They run
on the live-state benchmark's "everything on" configuration (its segments
are what `coffee-lovers` and `vip` name) with a shared cap of one touch per
hour.

`with_popup_events` adds to a share of the shoppers' sessions what the
tracker would send for them: a `Popup Shown` for one of the campaigns just
after the visit's second page, then a click or a close for some.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any, Final

import msgspec

from api.demo.model import Session
from benchmarks.livestate_config import everything_on
from state.campaigns import Campaign, Frequency, Variant
from state.conditions import (
    DAY,
    AnyOf,
    Cart,
    HasTag,
    InSegment,
    PageUrl,
    Returning,
    StageIs,
    TemperatureIs,
    Trait,
    UtmSource,
    WindowCount,
)
from state.config import ActiveConfig
from state.decisions import (
    AfterSeconds,
    CartValueOver,
    ExitIntent,
    Inactivity,
    OnArrival,
    PageTrigger,
    PopupContent,
    ScrollDepth,
    UrlMatch,
)
from state.workflows import MessagingPolicy, SharedCap

HOUR: Final = 3_600.0
POPUP_SHARE: Final = 0.3
"""The share of sessions in which a popup is shown."""


def _campaign(campaign_id: str, when: Any, trigger: PageTrigger, *, variants: int = 1, holdout: float = 0.0,
              **fields: Any) -> Campaign:
    arms = [Variant(id=chr(ord("a") + n), content=PopupContent(title=f"{campaign_id} {n}", text="Offer",
                                                               cta_label="Go", cta_url="https://shop.example/"))
            for n in range(variants)]
    return Campaign(id=campaign_id, variants=arms, when=when, triggers=[trigger], holdout_percent=holdout,
                    **fields)


def shop_campaigns() -> list[Campaign]:
    """Ten campaigns a shop would run, one of them for everybody."""
    return [
        _campaign("welcome", Returning(False), ExitIntent(), variants=2, holdout=10.0, priority=5),
        _campaign("welcome-back", Returning(True), OnArrival()),
        _campaign("coffee", InSegment("coffee-lovers"), ScrollDepth(percent=50), public=["segments"]),
        _campaign("cart-rescue", Cart(min_value=50.0, min_age_s=600.0), ExitIntent(), priority=9,
                  conversion_after="click"),
        _campaign("hot-leads", TemperatureIs(["warm", "hot"]), AfterSeconds(seconds=10), public=["temperature"]),
        _campaign("deciders", StageIs(["decision"]), CartValueOver(amount=30.0), variants=3, holdout=20.0),
        _campaign("ceramics", WindowCount("category", "ceramics", 7 * DAY, "gte", 2, event="Product Viewed"),
                  Inactivity(seconds=20)),
        _campaign("members", Trait("plan", "eq", "newsletter"), OnArrival(), frequency=Frequency(
            once_per_session=False, min_interval_s=HOUR)),
        _campaign("newsletter", AnyOf([UtmSource(["newsletter"]), HasTag("newsletter"), PageUrl("newsletter")]),
                  OnArrival()),
        _campaign("everyone", None, UrlMatch(contains="/p/"), variants=2, holdout=10.0, priority=-1),
    ]


def config(campaigns: list[Campaign]) -> ActiveConfig:
    """Everything on, a shared cap of one touch an hour, and `campaigns`."""
    policy = MessagingPolicy(quiet_hours=None, shared_cap=SharedCap(window_s=HOUR))
    return msgspec.structs.replace(everything_on(), messaging=policy, campaigns=campaigns)


def _popup_event(first: dict[str, Any], name: str, campaign_id: str) -> dict[str, Any]:
    event = {"type": "track", "messageId": str(uuid.uuid4()), "anonymousId": first["anonymousId"],
             "timestamp": first["timestamp"], "event": name, "context": first["context"],
             "properties": {"campaign": campaign_id, "variant": "a"}}
    if "userId" in first:
        event["userId"] = first["userId"]
    return event


def with_popup_events(sessions: Iterator[Session], seed: int, campaigns: list[str]) -> Iterator[Session]:
    """The sessions, `POPUP_SHARE` of them with a popup shown (then clicked or closed, for some)."""
    rng = random.Random(seed)
    for session in sessions:
        browser = session.browser
        if len(browser) >= 2 and rng.random() < POPUP_SHARE:
            campaign_id = rng.choice(campaigns)
            after = browser[1]
            added = [_popup_event(after, "Popup Shown", campaign_id)]
            outcome = rng.random()
            if outcome < 0.2:
                added.append(_popup_event(after, "Popup Clicked", campaign_id))
            elif outcome < 0.7:
                added.append(_popup_event(after, "Popup Closed", campaign_id))
            browser[2:2] = added
        yield session

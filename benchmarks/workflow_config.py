"""The workflows the workflows benchmark runs: ten a shop would set up, two probes, one long delay.

The ten (`shop_workflows`) use production durations (hours and days) and
between them every kind of trigger a shop leans on — events as common as
`Product Viewed` and `Product Added`, an idle cart, inactivity, entering a
segment, the score crossing a threshold — with delays, branches, a split,
tags and goals, so that most shoppers enter one or more. They run on the
live-state benchmark's "everything on" configuration (scoring, decay, tags,
the eight segments the segment triggers name). Quiet hours are off, so a
figure does not depend on the hour the benchmark ran; the frequency caps
are the defaults (e-mail 16 h, SMS 24 h).

The probes (`probe_workflows`) send one webhook the moment they are entered:
one by an event (`Coupon Applied` with the probe coupon), one by entering
the probe segment (one view of the probe-only category). `delay_workflow`
holds every contact that starts a trial in a delay, then sends one webhook.
"""

from __future__ import annotations

from typing import Final

import msgspec

from benchmarks.livestate_config import PROBE_CATEGORY, PROBE_ENTRY, everything_on, probe_segments
from state.conditions import DAY, All, Cart, EventMatch, Not, PropertyCondition, Total, WindowCount
from state.config import ActiveConfig
from state.config_rules import config_problem
from state.recipes import build
from state.workflows import (
    Branch,
    ChangeTags,
    Delay,
    Goal,
    MessagingPolicy,
    OnEvent,
    OnSegment,
    SendWebhook,
    Split,
    SplitArm,
    Workflow,
)

HOUR: Final = 3_600.0
ENDPOINT: Final = "bench"
ORDER: Final = EventMatch("Order Completed")
PROBE_EVENT: Final = "probe-event"
PROBE_SEGMENT: Final = "probe-segment"
PROBE_COUPON: Final = "PROBE"
DELAYED: Final = "delay-bench"
DELAYED_FIRST: Final = "trial-welcome"
DELAYED_STEP: Final = "after-delay"
DELAY_TRIGGER: Final = "Trial Started"


def _send(step_id: str, template: str, next_step: str | None = None, channel: str = "email") -> SendWebhook:
    return SendWebhook(id=step_id, endpoint=ENDPOINT, channel=channel, next=next_step,
                       payload={"template": template})


def shop_workflows() -> list[Workflow]:
    """Ten workflows a shop would run at once; five of them straight from the recipes."""
    recipes = [
        build("welcome-series", "welcome", ENDPOINT, {}),  # Signed Up → e-mail, 2 d, e-mail, 2 d, e-mail
        build("abandoned-cart", "abandoned-cart", ENDPOINT, {}),  # cart idle 1 h → reminders, branch
        build("browse-abandonment", "browse-abandonment", ENDPOINT, {}),  # no view for 4 h → branch
        build("lead-to-crm", "lead-to-crm", ENDPOINT, {}),  # score ≥ 50 → tag, CRM
        build("post-purchase", "post-purchase", ENDPOINT, {}),  # order → 3 d → branch → up/cross-sell
    ]
    browse_follow_up = Workflow(  # every product view (once a day): 4 h later, no cart and no order → reminder
        id="browse-follow-up", name="Viewed, did not add", trigger=OnEvent(EventMatch("Product Viewed")),
        steps=[Delay(id="wait", seconds=4 * HOUR, next="still-browsing"),
               Branch(id="still-browsing", when=All([Not(Cart()), Total("orders", "eq", 0)]), then="remind"),
               _send("remind", "browse-reminder")],
        goal=Goal(event=ORDER), reentry="cooldown", cooldown_s=DAY)
    cart_to_crm = Workflow(  # every add to cart (once an hour): the CRM hears at once; a day later, a tag
        id="cart-to-crm", name="Cart to CRM", trigger=OnEvent(EventMatch("Product Added")),
        steps=[_send("sync", "cart-sync", "wait", channel="crm"), Delay(id="wait", seconds=DAY, next="bought"),
               Branch(id="bought", when=Total("orders", "eq", 0), then="tag"),
               ChangeTags(id="tag", add=["cart-no-order"])],
        reentry="cooldown", cooldown_s=HOUR)
    hot_lead = Workflow(  # entering the hot-leads segment: tagged, and the CRM hears
        id="hot-lead", name="Hot lead to CRM", trigger=OnSegment("hot-leads"),
        steps=[ChangeTags(id="tag", add=["hot-lead"], next="notify"), _send("notify", "hot-lead", channel="crm")],
        reentry="cooldown", cooldown_s=7 * DAY)
    coffee_offer = Workflow(  # entering coffee-lovers: A/B — the offer now, or a day later if still no order
        id="coffee-offer", name="Coffee lovers offer", trigger=OnSegment("coffee-lovers"),
        steps=[Split(id="ab", arms=[SplitArm(name="now", percent=50, next="offer"),
                                    SplitArm(name="later", percent=50, next="wait")]),
               Delay(id="wait", seconds=DAY, next="still"),
               Branch(id="still", when=Total("orders", "eq", 0), then="offer"),
               _send("offer", "coffee-offer")],
        goal=Goal(event=ORDER))
    first_coupon = Workflow(  # signed up, viewed twice this week, no order in 3 days → coupon
        id="first-coupon", name="First-purchase coupon", trigger=OnEvent(EventMatch("Signed Up")),
        steps=[Delay(id="grace", seconds=3 * DAY, next="engaged"),
               Branch(id="engaged", when=WindowCount("event", "Product Viewed", 7 * DAY, "gte", 2), then="coupon"),
               _send("coupon", "first-purchase-coupon")],
        goal=Goal(event=ORDER))
    return [*recipes, browse_follow_up, cart_to_crm, hot_lead, coffee_offer, first_coupon]


def probe_workflows() -> list[Workflow]:
    """One webhook at once: entered by the probe event, or by entering the probe segment."""
    coupon = EventMatch("Coupon Applied", [PropertyCondition("coupon", "eq", PROBE_COUPON)])
    return [Workflow(id=PROBE_EVENT, trigger=OnEvent(coupon), steps=[_send("notify", "probe", channel="crm")]),
            Workflow(id=PROBE_SEGMENT, trigger=OnSegment(PROBE_ENTRY),
                     steps=[_send("notify", "probe", channel="crm")])]


def delay_workflow(seconds: float) -> Workflow:
    """A trial start: a webhook at once, `seconds` of delay, a follow-up webhook.

    The delay starts at the instant the first webhook is decided (its
    `created_at`): that plus `seconds` is the follow-up's due time.
    """
    return Workflow(id=DELAYED, trigger=OnEvent(EventMatch(DELAY_TRIGGER)),
                    steps=[_send(DELAYED_FIRST, "trial-welcome", "hold", channel="crm"),
                           Delay(id="hold", seconds=seconds, next=DELAYED_STEP),
                           _send(DELAYED_STEP, "trial-follow-up", channel="crm")])


def config(workflows: list[Workflow], probes: bool = False) -> ActiveConfig:
    """Everything on (the live-state benchmark's configuration) with `workflows`; quiet hours off."""
    base = everything_on()
    segments = [*base.segments, *(probe_segments() if probes else [])]
    live = msgspec.structs.replace(base, segments=segments, workflows=workflows,
                                   messaging=MessagingPolicy(quiet_hours=None))
    problem = config_problem(live)
    if problem is not None:
        raise ValueError(f"the benchmark's configuration is refused: {problem}")
    return live


__all__ = ["DELAYED", "DELAYED_FIRST", "DELAYED_STEP", "DELAY_TRIGGER", "ENDPOINT", "PROBE_CATEGORY",
           "PROBE_COUPON", "PROBE_EVENT", "PROBE_SEGMENT", "config", "delay_workflow", "probe_workflows",
           "shop_workflows"]

"""Recipes: the workflows the shop's seed documents describe, importable with one API call, then editable.

Each recipe is a function of its parameters — the webhook endpoint its
messages go to, and named parameters such as durations (defaults are the
documents'; a test passes seconds where production uses days) — returning a `Workflow` the
admin API publishes like any other. Messages are webhooks to the shop's
e-mail / SMS / CRM tool, with the recipe's name as `payload.template`, so
the receiving tool picks its template; switch a step to `SendEmail` to let
Attimo send it over SMTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from state.conditions import (
    DAY,
    All,
    Cart,
    EventMatch,
    HasTag,
    Not,
    Total,
    WindowCount,
)
from state.workflows import (
    Branch,
    ChangeList,
    ChangeTags,
    Delay,
    Goal,
    OnAnniversary,
    OnCartIdle,
    OnEvent,
    OnInactivity,
    OnLoyalty,
    OnScore,
    SendWebhook,
    Step,
    WaitFor,
    Workflow,
)

HOUR: Final = 3600.0
WEEK: Final = 7 * DAY


@dataclass(frozen=True)
class Recipe:
    """A named workflow template: what it does, its parameters (durations in seconds, thresholds, counts)."""

    name: str
    description: str
    parameters: dict[str, float]
    build: Callable[[RecipeParams], Workflow]


@dataclass(frozen=True)
class RecipeParams:
    """What an import may set: the workflow's id, the endpoint, parameters, enabled."""

    workflow_id: str
    endpoint: str
    parameters: dict[str, float] = field(default_factory=dict)
    enabled: bool = True

    def seconds(self, name: str) -> float:
        """A parameter (a duration in seconds, a threshold, a count) by name: the import's, else the default."""
        return self.parameters[name]


def _send(step_id: str, p: RecipeParams, template: str, next_step: str | None = None, channel: str = "email",
          **payload: Any) -> SendWebhook:
    return SendWebhook(id=step_id, endpoint=p.endpoint, channel=channel, next=next_step,
                       payload={"template": template, **payload})


def _wait(step_id: str, seconds: float, next_step: str | None) -> Delay:
    return Delay(id=step_id, seconds=seconds, next=next_step)


ORDER: Final = EventMatch("Order Completed")


CART_OFFER_TAG: Final = "cart-offer-sent"
"""Tag of contacts who got the abandoned-cart offer: the offer goes to a first-time abandoner only, so
abandoning carts never becomes the way to a discount."""


def abandoned_cart(p: RecipeParams) -> Workflow:
    """Three reminders after the cart goes idle; an offer on the first abandonment only; ends at purchase."""
    steps: list[Step] = [
        _send("reminder-1", p, "cart-reminder-1", "wait-1"),
        _wait("wait-1", p.seconds("second_reminder"), "first-time"),
        Branch(id="first-time", when=Not(HasTag(CART_OFFER_TAG)), then="offer", otherwise="reminder-2"),
        _send("offer", p, "cart-offer", "offered", coupon="COMEBACK10"),
        ChangeTags(id="offered", add=[CART_OFFER_TAG], next="wait-2"),
        _send("reminder-2", p, "cart-reminder-2", "wait-2"),
        _wait("wait-2", p.seconds("third_reminder"), "reminder-3"),
        _send("reminder-3", p, "cart-reminder-3"),
    ]
    return Workflow(id=p.workflow_id, name="Abandoned cart", trigger=OnCartIdle(p.seconds("idle")), steps=steps,
                    goal=Goal(event=ORDER), reentry="cooldown", cooldown_s=p.seconds("idle"), enabled=p.enabled)


def browse_abandonment(p: RecipeParams) -> Workflow:
    """Viewed products (at least twice in a day), no cart, no order: one reminder of what was browsed."""
    return Workflow(
        id=p.workflow_id, name="Browse abandonment",
        trigger=OnInactivity(p.seconds("idle"), events=["Product Viewed"]),
        steps=[Branch(id="browsed", when=All([WindowCount("event", "Product Viewed", DAY, "gte", 2),
                                               Not(Cart())]), then="reminder"),
               _send("reminder", p, "browse-reminder")],
        goal=Goal(event=ORDER), reentry="cooldown", cooldown_s=p.seconds("cooldown"), enabled=p.enabled)


def welcome_series(p: RecipeParams) -> Workflow:
    """Three welcome e-mails after sign-up, days apart."""
    return Workflow(id=p.workflow_id, name="Welcome series", trigger=OnEvent(EventMatch("Signed Up")), steps=[
        _send("welcome-1", p, "welcome-1", "gap-1"), _wait("gap-1", p.seconds("gap"), "welcome-2"),
        _send("welcome-2", p, "welcome-2", "gap-2"), _wait("gap-2", p.seconds("gap"), "welcome-3"),
        _send("welcome-3", p, "welcome-3")], enabled=p.enabled)


def first_purchase_coupon(p: RecipeParams) -> Workflow:
    """A signed-up visitor who has not bought within a delay gets a first-purchase coupon."""
    return Workflow(id=p.workflow_id, name="First-purchase coupon", trigger=OnEvent(EventMatch("Signed Up")),
                    steps=[_wait("grace", p.seconds("grace"), "coupon"),
                           _send("coupon", p, "first-purchase-coupon", coupon="FIRST15")],
                    goal=Goal(event=ORDER), enabled=p.enabled)


def nurturing_drip(p: RecipeParams) -> Workflow:
    """Seven weekly nurturing e-mails (the 7-week drip), ending at the first order."""
    steps: list[Step] = []
    for week in range(1, 8):
        steps.append(_send(f"week-{week}", p, f"nurture-{week}", f"after-{week}" if week < 7 else None))
        if week < 7:
            steps.append(_wait(f"after-{week}", p.seconds("week"), f"week-{week + 1}"))
    return Workflow(id=p.workflow_id, name="7-week nurturing drip", trigger=OnEvent(EventMatch("Signed Up")),
                    steps=steps, goal=Goal(event=ORDER), enabled=p.enabled)


def score_threshold_drip(p: RecipeParams) -> Workflow:
    """Warm leads (score past the threshold) get a short sales drip."""
    return Workflow(id=p.workflow_id, name="Score-threshold drip", trigger=OnScore(threshold=p.seconds("threshold")),
                    steps=[_send("drip-1", p, "warm-lead-1", "gap"), _wait("gap", p.seconds("gap"), "drip-2"),
                           _send("drip-2", p, "warm-lead-2")],
                    goal=Goal(event=ORDER), enabled=p.enabled)


def lead_to_crm(p: RecipeParams) -> Workflow:
    """Tell the sales CRM about a lead when the score makes it an MQL (and tag it)."""
    return Workflow(id=p.workflow_id, name="Lead score → CRM", trigger=OnScore(threshold=p.seconds("mql")),
                    steps=[ChangeTags(id="tag-mql", add=["mql"], next="notify"),
                           _send("notify", p, "new-mql", channel="crm", stage="MQL")], enabled=p.enabled)


def win_back(p: RecipeParams) -> Workflow:
    """No interaction for ~90 days: a first touch, then every ~45 days, off the list at ~270 days."""
    return Workflow(
        id=p.workflow_id, name="Win-back", trigger=OnInactivity(p.seconds("first_touch")), steps=[
            _send("touch-1", p, "win-back-1", "gap-1"), _wait("gap-1", p.seconds("every"), "touch-2"),
            _send("touch-2", p, "win-back-2", "gap-2"), _wait("gap-2", p.seconds("every"), "touch-3"),
            _send("touch-3", p, "win-back-3", "sunset-wait"),
            _wait("sunset-wait", max(0.0, p.seconds("sunset") - p.seconds("first_touch") - 2 * p.seconds("every")),
                  "sunset"),
            ChangeList(id="sunset", list_id="newsletter", member=False, next="tag-lapsed"),
            ChangeTags(id="tag-lapsed", add=["lapsed"])],
        goal=Goal(event=EventMatch("page")), enabled=p.enabled)


def engagement_tagging(p: RecipeParams) -> Workflow:
    """Tag `active` on an open, a click or a visit; `inactive` once none came for a while."""
    return Workflow(
        id=p.workflow_id, name="Engagement tagging",
        trigger=OnInactivity(p.seconds("inactive_after"), events=["Email Opened", "Email Link Clicked", "page"]),
        steps=[ChangeTags(id="mark-inactive", add=["inactive"], remove=["active"], next="await"),
               WaitFor(id="await", timeout_s=p.seconds("inactive_after"),
                       event=EventMatch("Email Opened"), then="mark-active"),
               ChangeTags(id="mark-active", add=["active"], remove=["inactive"])],
        reentry="always", enabled=p.enabled)


def loyalty_vip(p: RecipeParams) -> Workflow:
    """After N orders (or revenue past X): the `vip` tag, the VIP list, a thank-you."""
    return Workflow(
        id=p.workflow_id, name="Loyalty / VIP",
        trigger=OnLoyalty(orders=int(p.seconds("orders")), revenue=p.seconds("revenue")),
        steps=[ChangeTags(id="tag-vip", add=["vip"], next="list-vip"),
               ChangeList(id="list-vip", list_id="vip", next="thanks"), _send("thanks", p, "vip-welcome")],
        enabled=p.enabled)


def birthday(p: RecipeParams) -> Workflow:
    """A birthday greeting at 09:00 in the contact's time zone, with a coupon."""
    return Workflow(id=p.workflow_id, name="Birthday", trigger=OnAnniversary(field="birthday", at="09:00"),
                    steps=[_send("greeting", p, "birthday", coupon="BDAY20")], reentry="always", enabled=p.enabled)


def signup_anniversary(p: RecipeParams) -> Workflow:
    """A thank-you on the anniversary of signing up."""
    return Workflow(id=p.workflow_id, name="Sign-up anniversary",
                    trigger=OnAnniversary(field="signed_up_at", at="10:00"),
                    steps=[_send("thanks", p, "signup-anniversary")], reentry="always", enabled=p.enabled)


def post_purchase(p: RecipeParams) -> Workflow:
    """After an order: cross-sell for the categories bought; up-sell for bigger baskets."""
    return Workflow(
        id=p.workflow_id, name="Post-purchase cross-sell / up-sell", trigger=OnEvent(ORDER), steps=[
            _wait("settle", p.seconds("delay"), "basket"),
            Branch(id="basket", when=Total("average_order_value", "gte", 100.0), then="up-sell",
                   otherwise="cross-sell"),
            _send("up-sell", p, "up-sell"), _send("cross-sell", p, "cross-sell")],
        reentry="cooldown", cooldown_s=p.seconds("delay"), enabled=p.enabled)


def review_request(p: RecipeParams) -> Workflow:
    """Ask for a review some days after an order, unless one was written."""
    return Workflow(
        id=p.workflow_id, name="Review request", trigger=OnEvent(ORDER), steps=[
            _wait("after-delivery", p.seconds("delay"), "ask"), _send("ask", p, "review-request")],
        goal=Goal(event=EventMatch("Review Submitted")), reentry="always", enabled=p.enabled)


RECIPES: Final[dict[str, Recipe]] = {r.name: r for r in (
    Recipe("abandoned-cart", "Reminders after the cart goes idle; an offer for first-time abandoners; stops at "
           "purchase.", {"idle": HOUR, "second_reminder": DAY, "third_reminder": 2 * DAY}, abandoned_cart),
    Recipe("browse-abandonment", "Browsed products, no cart: one reminder.",
           {"idle": 4 * HOUR, "cooldown": WEEK}, browse_abandonment),
    Recipe("welcome-series", "Three welcome e-mails after sign-up.", {"gap": 2 * DAY}, welcome_series),
    Recipe("first-purchase-coupon", "A coupon for signed-up visitors who have not bought yet.",
           {"grace": 3 * DAY}, first_purchase_coupon),
    Recipe("nurturing-drip", "Seven weekly nurturing e-mails, until the first order.", {"week": WEEK},
           nurturing_drip),
    Recipe("score-threshold-drip", "A short drip once the score passes a threshold.",
           {"threshold": 50.0, "gap": 2 * DAY}, score_threshold_drip),
    Recipe("lead-to-crm", "Notify the sales CRM when a lead becomes an MQL.", {"mql": 50.0}, lead_to_crm),
    Recipe("win-back", "First touch after ~90 days without interaction, then every ~45 days; off the list at "
           "~270 days.", {"first_touch": 90 * DAY, "every": 45 * DAY, "sunset": 270 * DAY}, win_back),
    Recipe("engagement-tagging", "`active` / `inactive` tags from opens, clicks and visits.",
           {"inactive_after": 30 * DAY}, engagement_tagging),
    Recipe("loyalty-vip", "VIP tag, list and thank-you after N orders or revenue past X.",
           {"orders": 5, "revenue": 1000.0}, loyalty_vip),
    Recipe("birthday", "A birthday greeting at 09:00 in the contact's zone.", {}, birthday),
    Recipe("signup-anniversary", "A thank-you on the sign-up anniversary.", {}, signup_anniversary),
    Recipe("post-purchase", "Cross-sell or up-sell after an order (the basket's size decides).",
           {"delay": 3 * DAY}, post_purchase),
    Recipe("review-request", "Ask for a review some days after an order.", {"delay": 7 * DAY}, review_request),
)}
"""Every recipe by name."""

def build(name: str, workflow_id: str | None, endpoint: str, parameters: dict[str, float],
          enabled: bool = True) -> Workflow:
    """The recipe's workflow with these parameters; KeyError for an unknown recipe or parameter."""
    recipe = RECIPES[name]
    unknown = sorted(set(parameters) - set(recipe.parameters))
    if unknown:
        raise KeyError(f"recipe {name!r} has no parameter {unknown[0]!r} (it has {sorted(recipe.parameters)})")
    params = RecipeParams(workflow_id or name, endpoint, {**recipe.parameters, **parameters}, enabled)
    return recipe.build(params)

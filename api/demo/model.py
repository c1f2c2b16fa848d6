"""Seeded simulated shoppers: realistic funnels producing tracker-exact Segment events.

A visitor lands, browses a category, views products (popularity is Zipf-skewed),
adds and removes items, and either checks out and orders or abandons. Some sign
up (`identify` + `Signed Up`) mid-session; some return on later simulated days;
known users open e-mails. Browser events look exactly like the ones
`tracker_js` builds; orders and e-mail opens are *server-side* events, sent
through the Segment HTTP API as a shop's back end and e-mail service would.

Everything is drawn from one `random.Random(seed)`, so a run can be repeated.
`attimo demo` sends them at a human pace; the benchmarks (`benchmarks.shoppers`)
send them as fast as they can and check what Attimo made of them.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from api.demo_shop.catalog import PRODUCTS

LIBRARY: Final = {"name": "attimo.js", "version": "1.0.0"}
USER_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 "
    "Mobile Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
)
LOCALES: Final = ("en-GB", "it-IT", "de-DE", "fr-FR", "en-US")
REFERRERS: Final = (
    "",
    "https://www.google.com/",
    "https://www.instagram.com/",
    "https://newsletter.example/",
)
SHOP: Final = "https://shop.example"


@dataclass(frozen=True, slots=True)
class Item:
    """A product as e-commerce events describe it."""

    product_id: str
    sku: str
    name: str
    category: str
    price: float

    def properties(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "category": self.category,
            "price": self.price,
        }


def catalog(size: int, seed: int = 1) -> list[Item]:
    """`size` products: the demo shop's first, then generated ones in the same categories."""
    rng = random.Random(seed)
    items = [Item(p.product_id, p.sku, p.name, p.category, p.price) for p in PRODUCTS][:size]
    categories = sorted({i.category for i in items}) or ["misc"]
    for n in range(len(items), size):
        cat = categories[n % len(categories)]
        price = round(rng.lognormvariate(3.0, 0.6), 2)
        items.append(Item(f"p-{cat}-{n:05d}", f"{cat[:3].upper()}-{n:05d}", f"{cat.title()} {n}", cat, price))
    rng.shuffle(items)  # popularity rank independent of category
    return items


class Zipf:
    """Draws ranks 0..n-1 with probability ∝ 1/(rank+1)^s (a few best sellers, a long tail)."""

    def __init__(self, n: int, s: float = 1.1) -> None:
        weights = [1.0 / (rank + 1) ** s for rank in range(n)]
        self._cumulative = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_left(self._cumulative, rng.random() * self._cumulative[-1])


@dataclass
class Visitor:
    """One simulated person: a browser's anonymous id, and a user id once signed up."""

    anonymous_id: str
    user_id: str | None = None
    sessions_left: int = 1
    user_agent: str = USER_AGENTS[0]
    locale: str = LOCALES[0]


@dataclass
class Session:
    """One visit: browser events (websocket) and the server-side events it caused (HTTP)."""

    visitor: Visitor
    day: int
    browser: list[dict[str, Any]] = field(default_factory=list)
    server: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FunnelModel:
    """Probabilities of each step of the funnel; defaults look like a small shop's."""

    category_view: float = 0.75
    mean_product_views: float = 2.5
    add_per_view: float = 0.2
    remove_per_add: float = 0.15
    checkout_with_cart: float = 0.45
    order_after_checkout: float = 0.5
    sign_up: float = 0.08
    email_open_per_user_session: float = 0.3
    returning: float = 0.35
    max_sessions: int = 6


class ShopperModel:
    """Generates sessions for `visitors` shoppers over `days` simulated days."""

    def __init__(
        self,
        seed: int,
        prefix: str = "v",
        products: int = 200,
        days: int = 7,
        funnel: FunnelModel | None = None,
        now: datetime | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.items = catalog(products, seed)
        self.popularity = Zipf(len(self.items))
        self.categories = sorted({i.category for i in self.items})
        self.days = days
        self.funnel = funnel or FunnelModel()
        # Day `days-1` is today: earlier days lie in the past, as returning
        # visitors' history would.
        self.base = (now or datetime.now(UTC)) - timedelta(days=days - 1)
        self._ids = itertools.count()
        self._orders = itertools.count()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_visitor(self) -> Visitor:
        rng = self.rng
        sessions = 1
        while sessions < self.funnel.max_sessions and rng.random() < self.funnel.returning:
            sessions += 1
        return Visitor(
            f"{self.prefix}-{next(self._ids):07d}-{self._uuid()[:8]}",
            sessions_left=sessions,
            user_agent=rng.choice(USER_AGENTS),
            locale=rng.choice(LOCALES),
        )

    def _at(self, day: int, offset_s: float) -> str:
        return iso(self.base + timedelta(days=day, seconds=offset_s))

    def _browser_event(
        self, v: Visitor, kind: str, at: str, path: str, title: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind,
            "messageId": self._uuid(),
            "anonymousId": v.anonymous_id,
            "timestamp": at,
            "context": {
                "page": {"url": SHOP + path, "path": path, "title": title, "referrer": "", "search": ""},
                "userAgent": v.user_agent,
                "locale": v.locale,
                "library": LIBRARY,
            },
        }
        if v.user_id:
            event["userId"] = v.user_id
        event.update(fields)
        return event

    def _page(self, v: Visitor, at: str, path: str, title: str, referrer: str = "") -> dict[str, Any]:
        props = {"url": SHOP + path, "path": path, "title": title, "referrer": referrer, "search": ""}
        return self._browser_event(v, "page", at, path, title, {"properties": props})

    def _track(self, v: Visitor, at: str, path: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
        return self._browser_event(v, "track", at, path, name, {"event": name, "properties": props})

    def _server_event(
        self, at: str, name: str, props: dict[str, Any], anonymous_id: str | None, user_id: str | None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "track",
            "messageId": self._uuid(),
            "timestamp": at,
            "event": name,
            "properties": props,
            "context": {"library": {"name": "shop-backend"}},
        }
        if anonymous_id:
            event["anonymousId"] = anonymous_id
        if user_id:
            event["userId"] = user_id
        return event

    def session(self, v: Visitor, day: int) -> Session:
        """One visit of `v` on simulated `day`, following the funnel."""
        rng, f = self.rng, self.funnel
        s = Session(v, day)
        clock = rng.uniform(8 * 3600, 22 * 3600)

        def tick() -> str:
            nonlocal clock
            clock += rng.expovariate(1 / 20.0)
            return self._at(day, clock)

        s.browser.append(self._page(v, tick(), "/", "Home", rng.choice(REFERRERS)))
        if rng.random() < f.category_view:
            cat = rng.choice(self.categories)
            at = tick()
            s.browser.append(self._page(v, at, f"/c/{cat}", cat.title()))
            s.browser.append(
                self._track(v, at, f"/c/{cat}", "Product List Viewed", {"category": cat, "list_id": cat})
            )
        cart: dict[str, tuple[Item, int]] = {}
        views = 1 + int(rng.expovariate(1 / max(0.01, f.mean_product_views - 1)))
        for _ in range(views):
            item = self.items[self.popularity.draw(rng)]
            path = f"/p/{item.product_id}"
            at = tick()
            s.browser.append(self._page(v, at, path, item.name))
            s.browser.append(self._track(v, at, path, "Product Viewed", item.properties()))
            if rng.random() < f.add_per_view:
                qty = 1 if rng.random() < 0.8 else 2
                s.browser.append(
                    self._track(v, tick(), path, "Product Added", {**item.properties(), "quantity": qty})
                )
                held = cart.get(item.product_id)
                cart[item.product_id] = (item, qty + (held[1] if held else 0))
                if rng.random() < f.remove_per_add:
                    s.browser.append(
                        self._track(
                            v, tick(), "/cart", "Product Removed", {**item.properties(), "quantity": qty}
                        )
                    )
                    left = cart[item.product_id][1] - qty
                    if left > 0:
                        cart[item.product_id] = (item, left)
                    else:
                        del cart[item.product_id]
            if v.user_id is None and rng.random() < f.sign_up / views:
                v.user_id = f"u-{v.anonymous_id}"
                at = tick()
                s.browser.append(
                    self._browser_event(
                        v,
                        "identify",
                        at,
                        "/signup",
                        "Sign up",
                        {
                            "traits": {
                                "email": f"{v.anonymous_id}@mail.example",
                                "name": "Shopper",
                                "plan": "newsletter",
                            }
                        },
                    )
                )
                s.browser.append(self._track(v, at, "/signup", "Signed Up", {"method": "form"}))
        if cart:
            at = tick()
            s.browser.append(self._page(v, at, "/cart", "Cart"))
            s.browser.append(self._track(v, at, "/cart", "Cart Viewed", {"cart_id": v.anonymous_id}))
            if rng.random() < f.checkout_with_cart:
                total = round(sum(item.price * qty for item, qty in cart.values()), 2)
                products = [{**item.properties(), "quantity": qty} for item, qty in cart.values()]
                s.browser.append(
                    self._track(
                        v,
                        tick(),
                        "/checkout",
                        "Checkout Started",
                        {"value": total, "currency": "EUR", "products": products},
                    )
                )
                if rng.random() < f.order_after_checkout:
                    order_id = f"o-{self.prefix}-{next(self._orders)}"
                    s.server.append(
                        self._server_event(
                            tick(),
                            "Order Completed",
                            {"order_id": order_id, "revenue": total, "currency": "EUR", "products": products},
                            v.anonymous_id,
                            v.user_id,
                        )
                    )
        if v.user_id and rng.random() < f.email_open_per_user_session:
            s.server.append(
                self._server_event(
                    self._at(day, clock + 3600),
                    "Email Opened",
                    {"campaign": f"weekly-{day}"},
                    None,
                    v.user_id,
                )
            )
        return s

    def sessions(self, visitors: int) -> Iterator[Session]:
        """Every session of `visitors` new shoppers, day by day (returning ones come back later)."""
        per_day = [visitors // self.days + (1 if d < visitors % self.days else 0) for d in range(self.days)]
        returning: list[list[Visitor]] = [[] for _ in range(self.days)]
        for day in range(self.days):
            todays = [self.new_visitor() for _ in range(per_day[day])] + returning[day]
            self.rng.shuffle(todays)
            for v in todays:
                yield self.session(v, day)
                v.sessions_left -= 1
                if v.sessions_left > 0 and day + 1 < self.days:
                    returning[min(self.days - 1, day + 1 + int(self.rng.expovariate(0.7)))].append(v)


def iso(moment: datetime) -> str:
    """A UTC time as the tracker writes `timestamp` (ISO 8601, milliseconds, `Z`)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(event: dict[str, Any]) -> bytes:
    """An event as the tracker's JSON.stringify would send it (compact)."""
    return orjson.dumps(event)

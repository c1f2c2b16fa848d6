"""Decisions for the widget tests, built with the contract's own Structs (`state/decisions.py`).

Building them through `PublicDecisions` / `PopupDecision` / `ProductCard`
means a test can only hand the tracker what the decisions API could send;
the hostile-input tests start from these and then break the contract on
purpose (a `javascript:` URL the validator would refuse), because the
tracker must stay inert even if a server or a proxy sends one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from state.decisions import (
    AfterSeconds,
    CartValueOver,
    ExitIntent,
    Inactivity,
    OnArrival,
    PageTrigger,
    PopupContent,
    PopupDecision,
    ProductCard,
    PublicDecisions,
    ScrollDepth,
    UrlMatch,
)

__all__ = [
    "AfterSeconds",
    "CartValueOver",
    "ExitIntent",
    "Inactivity",
    "OnArrival",
    "ScrollDepth",
    "UrlMatch",
    "decisions",
    "popup",
    "product",
]


def popup(
    campaign: str = "welcome",
    *,
    variant: str = "a",
    layout: str = "modal",
    triggers: list[PageTrigger] | None = None,
    priority: int = 0,
    **content: Any,
) -> PopupDecision:
    """A popup decision; content defaults to a title naming the campaign."""
    content.setdefault("title", f"{campaign} title")
    return PopupDecision(
        campaign=campaign,
        variant=variant,
        layout=layout,  # type: ignore[arg-type]
        triggers=[OnArrival()] if triggers is None else triggers,
        content=PopupContent(**content),
        priority=priority,
    )


def product(n: int, **fields: Any) -> ProductCard:
    """Product card number n, with an http(s) image and link."""
    base: dict[str, Any] = {
        "id": f"p{n}",
        "name": f"Product {n}",
        "price": 10.0 + n,
        "image": f"https://img.example/p{n}.png",
        "url": f"https://shop.example/p{n}",
    }
    return ProductCard(**(base | fields))


def decisions(
    *popups: PopupDecision, recommendations: dict[str, list[ProductCard]] | None = None
) -> dict[str, Any]:
    """A PublicDecisions document as JSON-ready builtins (what the API answers and the gateway pushes)."""
    doc = PublicDecisions(popups=list(popups), recommendations=recommendations or {})
    return msgspec.to_builtins(doc)  # type: ignore[no-any-return]

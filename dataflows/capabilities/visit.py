"""Where the visitor is now: the latest page's URL and the UTM source of the visit.

Campaign targeting (and any segment) may ask "came from the newsletter"
(`UtmSource`) or "is on a pricing page" (`PageUrl`); those facts are about
the current visit, not the contact's history, so they live here rather
than in the windows. The UTM source is Segment's `context.campaign.source`,
else the `utm_source` parameter of the page URL; it counts for the session
it was seen in (`StateView.utm_source`). Both strings are clipped, so no
client can grow a contact through them.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec

from dataflows.capabilities.base import Capability, Context
from state.events import Event, Page, Screen

MAX_URL: Final = 2048
MAX_SOURCE: Final = 200


class Visit(msgspec.Struct, array_like=True, gc=False):
    """The latest page URL seen, and the latest UTM source with when it was seen (event time)."""

    url: str = ""
    url_at: float = 0.0
    utm_source: str = ""
    utm_at: float = 0.0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def page_url(event: Page | Screen) -> str | None:
    """The URL a page view names: its `url` property, else `context.page.url`."""
    url = _text(event.properties.get("url"))
    if url is None:
        page = event.context.get("page")
        url = _text(page.get("url")) if isinstance(page, dict) else None
    return url


def utm_source(event: Event, url: str | None) -> str | None:
    """Where the visit came from: `context.campaign.source`, else the URL's `utm_source` parameter."""
    campaign = event.context.get("campaign")
    source = _text(campaign.get("source")) if isinstance(campaign, dict) else None
    if source is None and url is not None and "utm_source=" in url:
        try:
            found = parse_qs(urlsplit(url).query).get("utm_source")
        except ValueError:  # a malformed URL (bad IPv6 host …) names no source
            found = None
        source = found[0] if found else None
    return source


def apply_visit(visit: Visit, event: Event, at: float) -> None:
    """Remember the page and the UTM source an event shows, unless a later one is known already.

    Only page views move the URL (a track event's page had its own page
    view), so other events cost one dictionary lookup.
    """
    url = page_url(event) if isinstance(event, Page | Screen) else None
    if url is not None and at >= visit.url_at:
        visit.url, visit.url_at = url[:MAX_URL], at
    source = utm_source(event, url)
    if source is not None and at >= visit.utm_at:
        visit.utm_source, visit.utm_at = source[:MAX_SOURCE], at


class VisitCapability(Capability[Visit]):
    """The current visit's page URL and UTM source, for targeting conditions."""

    name = "visit"
    part = Visit

    def apply(self, part: Visit, event: Event, ctx: Context) -> None:
        apply_visit(part, event, ctx.at)

    def merge(self, into: Visit, other: Visit, ctx: Context) -> None:
        if other.url_at > into.url_at:
            into.url, into.url_at = other.url, other.url_at
        if other.utm_at > into.utm_at:
            into.utm_source, into.utm_at = other.utm_source, other.utm_at

"""The contact's recent events, as a timeline for the contact explorer: the last `event_log_size` kept.

Operators debugging a workflow or a popup ask first "what did this contact
just do?"; the windows answer with counts, this part answers with the
events themselves. Each event becomes one compact entry (`LoggedEvent`):
its time, type and name, the page's path for a page view, the product's id
and name for an e-commerce event, the campaign of a popup event, and the
money it names — the line's price × quantity for a product added or
removed, the total (`revenue`, else `total`, else `value`) for a checkout,
a cart view or an order. Every string is clipped (`MAX_TEXT`, `MAX_PAGE`)
and every number checked finite when the entry is made, so whatever a
client sent, the entry is small and always encodes — into the snapshot and
into the profile's JSON — and is shown by the explorer as text only.

Kept oldest first (an entry appended is the usual case; a late event is
inserted at its time) and capped at `ContactSettings.event_log_size`, read
at every change, so lowering the setting shrinks logs as contacts act and 0
turns the log off (and empties a log at the contact's next event). When a
visitor logs in, both timelines are interleaved by time and capped. The
profile's `recent_events` lists them newest first. An operator's changes
through the admin API (tags, lists, a manual workflow entry) are listed
too, as types `tags`, `list` and `workflow`: they explain a segment or a
workflow the contact's own events do not.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.capabilities.visit import page_url
from state import events as ev
from state.decisions import POPUP_CLICKED, POPUP_CLOSED, POPUP_SHOWN
from state.events import (
    Event,
    Identify,
    InternalEvent,
    ListChanged,
    Page,
    Screen,
    TagsChanged,
    Track,
    WorkflowEntry,
    product_of,
)
from state.profile import RecentEvent

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

MAX_TEXT: Final = 100
"""Longest name, product id, product name or campaign kept, in characters."""
MAX_PAGE: Final = 200
"""Longest page path kept, in characters."""

_KINDS: Final[dict[type, str]] = {Page: "page", Screen: "screen", Track: "track", Identify: "identify"}
_PRODUCT_EVENTS: Final = frozenset((ev.PRODUCT_VIEWED, ev.PRODUCT_ADDED, ev.PRODUCT_REMOVED))
_LINE_EVENTS: Final = frozenset((ev.PRODUCT_ADDED, ev.PRODUCT_REMOVED))
_TOTAL_EVENTS: Final = frozenset((ev.ORDER_COMPLETED, ev.CHECKOUT_STARTED, ev.CART_VIEWED))
_POPUP_EVENTS: Final = frozenset((POPUP_SHOWN, POPUP_CLICKED, POPUP_CLOSED))
_at: Final = attrgetter("at")


class LoggedEvent(msgspec.Struct, array_like=True, gc=False):
    """One event as the log keeps it (event time; empty strings and None for what it does not name)."""

    at: float
    kind: str
    name: str = ""
    page: str = ""
    product_id: str = ""
    product: str = ""
    campaign: str = ""
    value: float | None = None


class EventLog(msgspec.Struct, array_like=True, gc=False):
    """The contact's last events, oldest first."""

    entries: list[LoggedEvent] = msgspec.field(default_factory=list)


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def page_path(url: str) -> str:
    """The part of a URL after its host (`/shoes?size=42`), clipped; a relative URL as it is."""
    start = url.find("://")
    if start != -1:
        slash = url.find("/", start + 3)
        url = url[slash:] if slash != -1 else "/"
    return url[:MAX_PAGE]


def _money(name: str, props: dict[str, Any]) -> float | None:
    """The line's value for a product added or removed; the total for a checkout, cart view or order."""
    if name in _LINE_EVENTS:
        price = _number(props.get("price"))
        quantity = _number(props.get("quantity", 1))
        if price is None:
            return None
        value = price * (quantity if quantity is not None and quantity > 0 else 1.0)
        return value if math.isfinite(value) else None
    for field in ("revenue", "total", "value"):
        if field in props:
            return _number(props[field])
    return None


def entry_of(event: Event, at: float) -> LoggedEvent:
    """The compact entry for one event: bounded strings, finite numbers, whatever the event holds."""
    kind = _KINDS.get(type(event), "other")
    if isinstance(event, Track):
        name = event.event
        props = event.properties
        entry = LoggedEvent(at, kind, name[:MAX_TEXT])
        if name in _PRODUCT_EVENTS:
            entry.product_id = (product_of(props) or "")[:MAX_TEXT]
            entry.product = _text(props.get("name"))
            if name in _LINE_EVENTS:
                entry.value = _money(name, props)
        elif name in _TOTAL_EVENTS:
            entry.value = _money(name, props)
        elif name in _POPUP_EVENTS:
            entry.campaign = _text(props.get("campaign"))
        return entry
    if isinstance(event, Page | Screen):
        url = page_url(event)
        path = page_path(url) if url is not None else _text(event.properties.get("path"), MAX_PAGE)
        return LoggedEvent(at, kind, _text(event.name), path)
    if isinstance(event, Identify):
        return LoggedEvent(at, kind, _text(event.user_id))
    return LoggedEvent(at, kind)


def admin_entry_of(event: InternalEvent) -> LoggedEvent | None:
    """An operator's change as an entry (`tags`: "+vip -old"; `list`: "+news" / "-news"; `workflow`: its id)."""
    at = event.timestamp.timestamp() if event.timestamp is not None else 0.0
    if isinstance(event, TagsChanged):
        name = " ".join([*(f"+{t}" for t in event.add), *(f"-{t}" for t in event.remove)])
        return LoggedEvent(at, "tags", name[:MAX_TEXT])
    if isinstance(event, ListChanged):
        return LoggedEvent(at, "list", f"{'+' if event.member else '-'}{event.list_id}"[:MAX_TEXT])
    if isinstance(event, WorkflowEntry):
        return LoggedEvent(at, "workflow", event.workflow[:MAX_TEXT])
    return None


def log_event(log: EventLog, entry: LoggedEvent, size: int) -> None:
    """Keep `entry` among the last `size` (in time order; a late one is inserted where it belongs)."""
    entries = log.entries
    if entries and entry.at < entries[-1].at:
        bisect.insort_right(entries, entry, key=_at)
    else:
        entries.append(entry)
    if len(entries) > size:
        del entries[:len(entries) - size]


def merge_logs(into: EventLog, other: EventLog, size: int) -> None:
    """A visitor's timeline joins its contact's: interleaved by time (stable), the last `size` kept."""
    if other.entries:
        into.entries = sorted([*into.entries, *other.entries], key=_at)[-size:] if size > 0 else []


def recent_events(log: EventLog) -> list[RecentEvent]:
    """The profile's form: newest first, empty fields left out."""
    return [RecentEvent(at=e.at, type=e.kind, name=e.name, page=e.page, product_id=e.product_id,
                        product=e.product, campaign=e.campaign, value=e.value) for e in reversed(log.entries)]


class EventLogCapability(Capability[EventLog]):
    """The contact's last events, for the explorer's timeline (off when `event_log_size` is 0)."""

    name = "event_log"
    part = EventLog

    def apply(self, part: EventLog, event: Event, ctx: Context) -> None:
        size = ctx.settings.event_log_size
        if size > 0:
            log_event(part, entry_of(event, ctx.at), size)
        elif part.entries:
            part.entries.clear()

    def admin(self, part: EventLog, event: InternalEvent, ctx: Context) -> None:
        size = ctx.settings.event_log_size
        entry = admin_entry_of(event) if size > 0 else None
        if entry is not None:
            log_event(part, entry, size)

    def merge(self, into: EventLog, other: EventLog, ctx: Context) -> None:
        merge_logs(into, other, ctx.settings.event_log_size)

    def render(self, part: EventLog, view: StateView) -> Mapping[str, Any]:
        if not part.entries:
            return {}
        return {"recent_events": recent_events(part)}

"""Per-contact sliding windows over event time: how often something happened lately.

Each contact keeps one compact log of its recent events, sorted by event
time, as parallel columns: the time, and the event key, category and product
as small ints into a per-contact table of interned strings. A count over any
window, dimension and value is two bisections and one C-level `list.count`,
so segments can ask arbitrary windows ("shoes viewed ≥ 3 times in 7 d")
without bucketing errors, and the answer changes exactly when an entry
leaves: `now − window < at ≤ now` is in, `at == now − window` is out.

Alongside the windows, the log keeps when each event key last happened, all
time (for "no order in 90 d"), even for events too late to enter a window —
for at most `MAX_EVENT_KEYS` keys: past that, the key that happened least
recently is forgotten, so a client inventing event names cannot grow a
contact without end.
"""

from __future__ import annotations

import functools
import math
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from state.config import DAY, WindowSettings
from state.events import Event, Track, category_of, event_key, product_of

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView
    from dataflows.io.outputs import Output

NONE: Final = -1
"""Column value for an entry without a category or product."""
MAX_EVENT_KEYS: Final = 500


class ActivityLog(msgspec.Struct, array_like=True, gc=False):
    """One contact's recent events, oldest first, as parallel columns.

    `names` interns every string the columns refer to (name → index; the
    indexes are 0…n−1 in insertion order). `event`, `category` and `product`
    hold indexes (`NONE` when absent), `at` the event times. `last_at` maps
    an event-key index to the latest time that key happened, all time.
    `dropped` counts entries dropped since the string table was last
    compacted. `gc=False`: the Struct only holds numbers and strings, so it
    can never be part of a reference cycle, and skipping the GC header saves
    memory per contact.
    """

    names: dict[str, int] = msgspec.field(default_factory=dict)
    at: list[float] = msgspec.field(default_factory=list)
    event: list[int] = msgspec.field(default_factory=list)
    category: list[int] = msgspec.field(default_factory=list)
    product: list[int] = msgspec.field(default_factory=list)
    last_at: dict[int, float] = msgspec.field(default_factory=dict)
    dropped: int = 0
    # Events that arrived too late for the windows (counted all-time only).
    late: int = 0


def activity_keys(event: Event) -> tuple[str, str | None, str | None]:
    """What an event counts as: (event key, category, product id).

    Category and product come from a track event's properties when it has
    them (`state.events.category_of`, `product_of`).
    """
    if isinstance(event, Track) and event.properties:
        return event.event, category_of(event.properties), product_of(event.properties)
    return event_key(event), None, None


def _intern(log: ActivityLog, name: str) -> int:
    names = log.names
    index = names.get(name)
    if index is None:
        # sys.intern: "page", "shoes" … become one object shared by every contact.
        index = names[sys.intern(name)] = len(names)
    return index


def _reverse(names: dict[str, int]) -> list[str]:
    out = [""] * len(names)
    for name, index in names.items():
        out[index] = name
    return out


def record_activity(log: ActivityLog, event: Event, at: float, received_at: float,
                    settings: WindowSettings) -> bool:
    """Add an event to the windows; False when it arrived too late to count.

    An event received more than `settings.lateness_s` after it happened only
    updates `last_event_at`. A late event within lateness is inserted in time
    order. Past `settings.max_log_entries` the oldest entries are dropped.
    """
    name, category, product = activity_keys(event)
    key = _intern(log, name)
    last = log.last_at.get(key)
    if last is None and len(log.last_at) >= MAX_EVENT_KEYS:
        del log.last_at[min(log.last_at, key=log.last_at.__getitem__)]
    if last is None or at > last:
        log.last_at[key] = at
    if received_at - at > settings.lateness_s:
        return False
    cat = NONE if category is None else _intern(log, category)
    prod = NONE if product is None else _intern(log, product)
    times = log.at
    if not times or at >= times[-1]:
        times.append(at)
        log.event.append(key)
        log.category.append(cat)
        log.product.append(prod)
    else:
        # bisect_right: a late event lands after entries of the same instant.
        i = bisect_right(times, at)
        times.insert(i, at)
        log.event.insert(i, key)
        log.category.insert(i, cat)
        log.product.insert(i, prod)
    excess = len(times) - settings.max_log_entries
    if excess > 0:
        _drop_oldest(log, excess)
    return True


def _column(log: ActivityLog, dimension: str) -> list[int]:
    if dimension == "event":
        return log.event
    if dimension == "category":
        return log.category
    if dimension == "product":
        return log.product
    raise ValueError(f"unknown window dimension {dimension!r}: expected event, category or product")


def _bounds(times: list[float], window_s: float, now: float) -> tuple[int, int]:
    """Index range of the entries with now − window_s < at ≤ now."""
    return bisect_right(times, now - window_s), bisect_right(times, now)


def _first_match(log: ActivityLog, column: list[int], value: int, event: int | None,
                 lo: int, hi: int) -> int | None:
    """Index of the oldest entry in [lo, hi) matching value (and event), or None."""
    events = log.event
    try:
        i = column.index(value, lo, hi)
        while event is not None and events[i] != event:
            i = column.index(value, i + 1, hi)
    except ValueError:
        return None
    return i


def window_count(log: ActivityLog, dimension: str, value: str, window_s: float,
                 event: str | None, now: float) -> int:
    """How many entries with `dimension == value` (and event key `event`) are in (now − window_s, now]."""
    names = log.names
    index = names.get(value)
    if index is None:
        return 0
    column = _column(log, dimension)
    times = log.at
    lo, hi = _bounds(times, window_s, now)
    if lo >= hi:
        return 0
    if event is None or (dimension == "event" and event == value):
        if lo == 0 and hi == len(times):
            return column.count(index)
        return column[lo:hi].count(index)
    event_index = names.get(event)
    if event_index is None or dimension == "event":
        return 0  # unknown event, or asking for one event key that is another
    # Jump from match to match in C rather than test every entry in Python.
    events = log.event
    count = 0
    i = lo - 1
    try:
        while True:
            i = column.index(index, i + 1, hi)
            if events[i] == event_index:
                count += 1
    except ValueError:
        return count


def _leaves(at: float, window_s: float) -> float:
    """The first instant at which an entry at `at` is out of the window.

    Nominally at + window_s, but float rounding can leave (at + W) − W just
    below `at`; a timer set then would find the count unchanged and fire
    again forever, so step to the next representable instant until it's out.
    """
    moment = at + window_s
    while moment - window_s < at:
        moment = math.nextafter(moment, math.inf)
    return moment


def next_window_change(log: ActivityLog, dimension: str, value: str, window_s: float,
                       event: str | None, now: float) -> float | None:
    """When `window_count` next drops without a new event (its oldest match leaves), or None."""
    names = log.names
    index = names.get(value)
    if index is None:
        return None
    event_index: int | None = None
    if event is not None and not (dimension == "event" and event == value):
        event_index = names.get(event)
        if event_index is None or dimension == "event":
            return None
    column = _column(log, dimension)
    times = log.at
    lo, hi = _bounds(times, window_s, now)
    i = _first_match(log, column, index, event_index, lo, hi)
    return None if i is None else _leaves(times[i], window_s)


def next_expiry(log: ActivityLog, windows_s: list[float], now: float) -> float | None:
    """The earliest moment any count over `windows_s` changes: an entry leaves or a future one enters."""
    times = log.at
    if not times:
        return None
    hi = bisect_right(times, now)
    best = times[hi] if hi < len(times) else None
    for window_s in windows_s:
        lo = bisect_right(times, now - window_s)
        if lo < hi:
            moment = _leaves(times[lo], window_s)
            if best is None or moment < best:
                best = moment
    return best


@functools.lru_cache(maxsize=64)
def window_label(window_s: float) -> str:
    """A window's name in the profile: 1h, 24h, 7d, 30d, 15m, 90s.

    The largest exact unit, except that one day reads `24h` (how dashboards
    say it); fractional seconds read like `1.5s`.
    """
    seconds = float(window_s)
    if seconds > DAY and seconds % DAY == 0:
        return f"{int(seconds // DAY)}d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds.is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def window_summary(log: ActivityLog, windows_s: list[float], now: float,
                   top_products: int = 10,
                   products_only_in: float | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """Counts per event key, category and product (the top `top_products`) for each window.

    For the profile: `{"1h": {"event": {"page": 3}, "category": {…}, "product": {…}}, "24h": …}`.
    Products are ordered by count, then id; with `products_only_in`, only
    that window lists products (the ranking is the costly part).
    """
    strings = _reverse(log.names)
    times, events, categories, products = log.at, log.event, log.category, log.product
    hi = bisect_right(times, now)
    event_n: dict[int, int] = {}
    category_n: dict[int, int] = {}
    product_n: dict[int, int] = {}
    # Windows nest, so walk back from now once, from the shortest window to
    # the longest, and read the running counts off at each window's edge.
    i = hi
    current: dict[str, dict[str, int]] | None = None
    by_window: dict[float, dict[str, dict[str, int]]] = {}
    for window_s in sorted(set(windows_s)):
        lo = bisect_right(times, now - window_s)
        if current is None or lo < i:
            while i > lo:
                i -= 1
                key = events[i]
                event_n[key] = event_n.get(key, 0) + 1
                key = categories[i]
                if key != NONE:
                    category_n[key] = category_n.get(key, 0) + 1
                key = products[i]
                if key != NONE:
                    product_n[key] = product_n.get(key, 0) + 1
            current = {
                "event": {strings[k]: n for k, n in event_n.items()},
                "category": {strings[k]: n for k, n in category_n.items()},
            }
            if products_only_in is None or window_s == products_only_in:
                ranked = sorted(((strings[k], n) for k, n in product_n.items()), key=_by_count)
                current["product"] = dict(ranked[:top_products])
            by_window[window_s] = current
        else:  # nothing more in this longer window: same counts
            by_window[window_s] = {dimension: dict(counts) for dimension, counts in current.items()}
            if window_s == products_only_in and "product" not in current:
                ranked = sorted(((strings[k], n) for k, n in product_n.items()), key=_by_count)
                by_window[window_s]["product"] = dict(ranked[:top_products])
    return {window_label(window_s): by_window[window_s] for window_s in windows_s}


def viewed_products(log: ActivityLog, since: float, n: int) -> list[tuple[str, int, str | None]]:
    """The `n` products with most entries after `since`: (id, count, latest category), most first."""
    strings = _reverse(log.names)
    counts: dict[int, int] = {}
    category_of: dict[int, int] = {}
    for i in range(bisect_right(log.at, since), len(log.at)):
        product = log.product[i]
        if product != NONE:
            counts[product] = counts.get(product, 0) + 1
            if log.category[i] != NONE:
                category_of[product] = log.category[i]
    ranked = sorted(((strings[k], c, k) for k, c in counts.items()), key=lambda item: (-item[1], item[0]))[:n]
    return [(name, c, strings[category_of[k]] if k in category_of else None) for name, c, k in ranked]


def last_event_at(log: ActivityLog, event: str) -> float | None:
    """When the event key last happened (event time, all time), or None if never."""
    index = log.names.get(event)
    return None if index is None else log.last_at.get(index)


def prune(log: ActivityLog, now: float, keep_s: float, max_entries: int) -> None:
    """Drop entries older than now − keep_s, then the oldest beyond `max_entries`.

    `keep_s` should be the largest window asked about plus the lateness, so
    no count can change. Cheap when there is nothing to drop (call it often).
    """
    times = log.at
    if not times:
        return
    horizon = now - keep_s
    drop = bisect_left(times, horizon) if times[0] < horizon else 0
    drop = max(drop, len(times) - max_entries)
    if drop > 0:
        _drop_oldest(log, drop)


def _drop_oldest(log: ActivityLog, count: int) -> None:
    del log.at[:count]
    del log.event[:count]
    del log.category[:count]
    del log.product[:count]
    log.dropped += count
    # Compacting the string table costs O(entries + strings); waiting until
    # as many entries have gone as remain (each interned at most 3 strings)
    # keeps that O(1) per dropped entry.
    if log.dropped >= len(log.at):
        _compact_names(log)


def _compact_names(log: ActivityLog) -> None:
    """Forget interned strings no entry and no `last_at` refers to; renumber the rest."""
    log.dropped = 0
    used = set(log.event)
    used.update(log.category)
    used.update(log.product)
    used.update(log.last_at)
    used.discard(NONE)
    if len(used) == len(log.names):
        return
    strings = _reverse(log.names)
    keep = sorted(used)
    remap = {old: new for new, old in enumerate(keep)}
    remap[NONE] = NONE
    log.names = {strings[old]: new for new, old in enumerate(keep)}
    log.event = [remap[i] for i in log.event]
    log.category = [remap[i] for i in log.category]
    log.product = [remap[i] for i in log.product]
    log.last_at = {remap[k]: v for k, v in log.last_at.items()}


def merge_logs(into: ActivityLog, other: ActivityLog) -> None:
    """Fold `other`'s history into `into` (identity merge): all entries in time order, latest `last_at`.

    The result may exceed the entry cap; call `prune` afterwards.
    """
    remap = [_intern(into, name) for name in _reverse(other.names)]
    for key, moment in other.last_at.items():
        mine = remap[key]
        current = into.last_at.get(mine)
        if current is None or moment > current:
            into.last_at[mine] = moment
    if len(into.last_at) > MAX_EVENT_KEYS:
        recent = sorted(into.last_at.items(), key=lambda item: item[1])[-MAX_EVENT_KEYS:]
        into.last_at = dict(recent)
    if not other.at:
        return

    def mapped(column: list[int]) -> list[int]:
        return [NONE if i == NONE else remap[i] for i in column]

    rows = sorted(
        zip(into.at + other.at, into.event + mapped(other.event),
            into.category + mapped(other.category), into.product + mapped(other.product),
            strict=True),
        key=itemgetter(0))  # stable: at equal times, `into`'s entries stay first
    into.at = [row[0] for row in rows]
    into.event = [row[1] for row in rows]
    into.category = [row[2] for row in rows]
    into.product = [row[3] for row in rows]


class WindowsCapability(Capability[ActivityLog]):
    """Sliding event-time windows per event, category and product; the profile's `windows`."""

    name = "windows"
    part = ActivityLog

    def apply(self, part: ActivityLog, event: Event, ctx: Context) -> None:
        if not record_activity(part, event, ctx.at, ctx.received, ctx.live.config.windows):
            part.late += 1
            ctx.count("late_events")

    def merge(self, into: ActivityLog, other: ActivityLog, ctx: Context) -> None:
        merge_logs(into, other)
        into.late += other.late

    def evaluate(self, part: ActivityLog, view: StateView) -> Sequence[Output]:
        # Entries no window, segment or stage rule can count any more (and the excess) go.
        prune(part, view.now, view.live.retention_s, view.live.config.windows.max_log_entries)
        return ()

    def due(self, part: ActivityLog, view: StateView) -> float | None:
        return next_expiry(part, view.live.config.windows.windows_s, view.now)

    def render(self, part: ActivityLog, view: StateView) -> Mapping[str, Any]:
        windows_s = view.live.config.windows.windows_s
        # Top products only for the longest window, to keep profiles small.
        summary = window_summary(part, windows_s, view.now, top_products=5,
                                 products_only_in=max(windows_s, default=None))
        return {"windows": summary, "late_events": part.late}

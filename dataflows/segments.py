"""Segments: which contacts match a condition tree right now, and until when.

Pure logic, no Redis and no Bytewax: the contact operator builds a
`ContactView` for a contact after each event or timer, calls
`evaluate_segments`, diffs the result with `changes`, and arms a timer at
`next_flip` so that a contact leaves "viewed shoes 3× in 7 d" at the exact
instant the oldest view falls out of the window, with no new event and no
cron rebuild.

Semantics worth knowing:

* Comparisons are `dataflows.matching.compare`, the same as scoring and tag
  rules use on event properties (see its docstring). A trait the contact
  does not have (the view answers None) is passed as MISSING, so it matches
  nothing but `ne` and `exists: false`, exactly like a missing property.
* Time bounds are half-open so that a flip happens exactly at the moment
  `next_flip` reports: `NoEventWithin` holds from `last + window_s` on;
  a cart's age must be `>= min_age_s` and `< max_age_s`; `WindowCount`
  counts (now − window_s, now] as the view does.
* `Anniversary`: the trait is a date ("YYYY-MM-DD", an ISO datetime string
  whose date part is used as written, or a date/datetime). It holds on the
  days from `within_days` before a yearly recurrence up to the day itself
  (UTC); recurrences start the year after the date (signing up today is not
  an anniversary); Feb 29 recurs on Feb 28 in non-leap years.
* `next_flip` ignores leaves whose value drifts continuously with time but
  is re-read at every event and timer anyway: the decayed `Score` (and the
  temperature derived from it) and RFM recency. Add a timer source for them
  here if a product need appears (the view would have to expose when the
  next threshold is crossed).
* `InSegment` reads the membership computed earlier in the same pass
  (`compile_segments` orders dependencies first); outside a pass, for stage
  rules, it falls back to `ContactView.in_segment`.

Ordering and validation of the segment graph (`dependency_order`,
`SegmentDefinitionError`) live in `state.segment_graph`, so the admin API
rejects a cycle with exactly the check the dataflow relies on.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from dataflows.matching import MISSING, compare
from dataflows.view import ContactView
from state.config import (
    All,
    Anniversary,
    AnyOf,
    Cart,
    Condition,
    HasTag,
    InList,
    InSegment,
    NoEventWithin,
    Not,
    Rfm,
    Score,
    SegmentDef,
    StageIs,
    StageRule,
    TemperatureIs,
    Total,
    Trait,
    WindowCount,
)
from state.segment_graph import SegmentDefinitionError, dependency_order, walk

DEFAULT_STAGE: Final = "awareness"
_TIME_LEAVES: Final = (WindowCount, NoEventWithin, Cart, Anniversary)



@dataclass(frozen=True)
class CompiledSegments:
    """Validated segments in evaluation order, plus the leaves that can flip with time."""

    order: tuple[SegmentDef, ...]
    stages: tuple[StageRule, ...] = ()
    time_leaves: tuple[Condition, ...] = field(default=())

    @property
    def ids(self) -> list[str]:
        """Segment ids in evaluation order."""
        return [segment.id for segment in self.order]


# ---- validation and ordering --------------------------------------------------

def compile_segments(segments: Sequence[SegmentDef], stages: Sequence[StageRule] = ()) -> CompiledSegments:
    """Validate and order segments (and optional stage rules) for evaluation.

    Stage rules are only given so that `next_flip` also covers time-driven
    stage changes; a stage rule may not test the stage itself.
    """
    order = dependency_order(segments)
    for rule in stages:
        if any(isinstance(n, StageIs) for n in walk(rule.when)):
            raise SegmentDefinitionError(f"stage rule {rule.stage!r} tests the stage itself")
    conditions = [s.when for s in order] + [r.when for r in stages]
    leaves = dict.fromkeys(n for c in conditions for n in walk(c) if isinstance(n, _TIME_LEAVES))
    return CompiledSegments(tuple(order), tuple(stages), tuple(leaves))


# ---- anniversaries ------------------------------------------------------------

def parse_date(value: object) -> date | None:
    """A date trait as a date: "YYYY-MM-DD…", date or datetime (date part as written)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def recurrence(origin: date, year: int) -> date:
    """The origin's month and day in `year` (Feb 29 → Feb 28 in non-leap years)."""
    if origin.month == 2 and origin.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, origin.month, origin.day)


def anniversary_holds(origin: date, within_days: int, today: date) -> bool:
    """Whether a recurrence of `origin` falls in [today, today + within_days]."""
    if within_days < 0:
        return False
    for year in range(max(today.year, origin.year + 1), today.year + 2 + within_days // 365):
        days = (recurrence(origin, year) - today).days
        if days >= 0:
            return days <= within_days
    return False


def _next_anniversary_change(origin: date, within_days: int, today: date) -> date | None:
    if within_days < 0:
        return None
    now_value = anniversary_holds(origin, within_days, today)
    first = max(today.year - 1, origin.year + 1)
    candidates: set[date] = set()
    for year in range(first, today.year + 3 + within_days // 365):
        occurs = recurrence(origin, year)
        candidates.update((occurs - timedelta(days=within_days), occurs + timedelta(days=1)))
    for day in sorted(c for c in candidates if c > today):
        if anniversary_holds(origin, within_days, day) != now_value:
            return day
    return None


def _utc_day(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def _midnight(day: date) -> float:
    return datetime.combine(day, time(0), UTC).timestamp()


# ---- evaluation ---------------------------------------------------------------

def evaluate_condition(condition: Condition, view: ContactView, member_of: Mapping[str, bool]) -> bool:
    """Whether `condition` holds for the contact at `view.now`.

    `member_of` holds the memberships already decided in this pass, for
    `InSegment`; ids missing from it are asked of the view.
    """
    c = condition
    if isinstance(c, All):
        return all(evaluate_condition(x, view, member_of) for x in c.of)
    if isinstance(c, AnyOf):
        return any(evaluate_condition(x, view, member_of) for x in c.of)
    if isinstance(c, Not):
        return not evaluate_condition(c.of, view, member_of)
    if isinstance(c, Trait):
        value = view.trait(c.name)
        return compare(c.op, MISSING if value is None else value, c.value)
    if isinstance(c, HasTag):
        return view.has_tag(c.tag)
    if isinstance(c, InList):
        return view.in_list(c.list)
    if isinstance(c, Score):
        return compare(c.op, view.score(), c.value)
    if isinstance(c, TemperatureIs):
        return view.temperature() in c.values
    if isinstance(c, StageIs):
        return view.stage() in c.values
    if isinstance(c, WindowCount):
        return compare(c.op, view.window_count(c.dimension, c.value, c.window_s, c.event), c.n)
    if isinstance(c, NoEventWithin):
        last = view.last_event_at(c.event)
        if last is None:
            return not c.ever_happened
        return last <= view.now - c.window_s
    if isinstance(c, Rfm):
        r, f, m = view.rfm()
        return compare(c.op, {"r": r, "f": f, "m": m}[c.part], c.value)
    if isinstance(c, Cart):
        return _cart_holds(c, view)
    if isinstance(c, Anniversary):
        origin = parse_date(view.trait(c.field))
        return origin is not None and anniversary_holds(origin, c.within_days, _utc_day(view.now))
    if isinstance(c, Total):
        return compare(c.op, view.total(c.counter), c.value)
    if isinstance(c, InSegment):
        found = member_of.get(c.segment)
        return view.in_segment(c.segment) if found is None else found
    raise TypeError(f"unknown condition {type(c).__name__}")


def _cart_holds(c: Cart, view: ContactView) -> bool:
    updated = view.cart_updated_at()
    if updated is None:
        return False
    value = view.cart_value()
    age = view.now - updated
    return ((c.min_value is None or value >= c.min_value)
            and (c.max_value is None or value <= c.max_value)
            and (c.min_age_s is None or age >= c.min_age_s)
            and (c.max_age_s is None or age < c.max_age_s))


def evaluate_segments(compiled: CompiledSegments, view: ContactView) -> set[str]:
    """Ids of the segments the contact is in at `view.now`."""
    member_of: dict[str, bool] = {}
    for segment in compiled.order:
        member_of[segment.id] = evaluate_condition(segment.when, view, member_of)
    return {sid for sid, member in member_of.items() if member}


def stage_of(stages: Iterable[StageRule], view: ContactView) -> str:
    """The journey stage: the first rule that holds, else "awareness"."""
    for rule in stages:
        if evaluate_condition(rule.when, view, {}):
            return rule.stage
    return DEFAULT_STAGE


def changes(before: set[str], after: set[str]) -> tuple[list[str], list[str]]:
    """Segments entered and exited between two evaluations, each sorted."""
    return sorted(after - before), sorted(before - after)


# ---- timers -------------------------------------------------------------------

def _leaf_flips(leaf: Condition, view: ContactView) -> Iterator[float]:
    now = view.now
    if isinstance(leaf, WindowCount):
        at = view.next_window_change(leaf.dimension, leaf.value, leaf.window_s, leaf.event)
        if at is not None:
            yield at
    elif isinstance(leaf, NoEventWithin):
        last = view.last_event_at(leaf.event)
        if last is not None:
            yield last + leaf.window_s
    elif isinstance(leaf, Cart):
        updated = view.cart_updated_at()
        if updated is not None:
            for bound in (leaf.min_age_s, leaf.max_age_s):
                if bound is not None:
                    yield updated + bound
    elif isinstance(leaf, Anniversary):
        origin = parse_date(view.trait(leaf.field))
        if origin is not None:
            day = _next_anniversary_change(origin, leaf.within_days, _utc_day(now))
            if day is not None:
                yield _midnight(day)


def next_flip(compiled: CompiledSegments, view: ContactView) -> float | None:
    """The earliest moment after `view.now` when a time-driven leaf may change, or None.

    Time-driven leaves are windows, absences, cart age and anniversaries
    (of segments and of the stage rules given to `compile_segments`). The
    caller re-evaluates at that moment; a flip that turns out not to change
    any membership costs one evaluation.
    """
    now = view.now
    flips = [at for leaf in compiled.time_leaves for at in _leaf_flips(leaf, view) if at > now]
    return min(flips, default=None)

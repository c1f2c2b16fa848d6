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
  (`compile_segments` orders dependencies first); outside a pass it falls
  back to `ContactView.in_segment`.
* Stage rules may test segments, and segments the stage: the plan
  (`state.segment_graph.stage_plan`) evaluates the segments stage rules need
  first, then the stage, then every other segment.

Each condition kind is one entry of `_KINDS`: how it holds, and when it can
flip with time alone — so a new kind is one function pair, not two
parallel `isinstance` chains.

Ordering and validation of the segment graph (`dependency_order`,
`SegmentDefinitionError`) live in `state.segment_graph`, so the admin API
rejects a cycle with exactly the check the dataflow relies on.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from dataflows.rules.matching import MISSING, compare
from dataflows.rules.view import ContactView
from state.config import (
    All,
    Anniversary,
    AnyOf,
    Cart,
    Condition,
    HasTag,
    InList,
    InSegment,
    InWorkflow,
    NoEventWithin,
    Not,
    PageUrl,
    Returning,
    Rfm,
    Score,
    SegmentDef,
    StageIs,
    StageRule,
    TemperatureIs,
    Total,
    Trait,
    UtmSource,
    WindowCount,
)
from state.segment_graph import stage_plan, walk

DEFAULT_STAGE: Final = "awareness"



@dataclass(frozen=True)
class CompiledSegments:
    """Validated segments in evaluation order around the stage, plus the leaves that can flip with time."""

    before_stage: tuple[SegmentDef, ...]
    after_stage: tuple[SegmentDef, ...] = ()
    stages: tuple[StageRule, ...] = ()
    time_leaves: tuple[Condition, ...] = field(default=())

    @property
    def order(self) -> tuple[SegmentDef, ...]:
        """Every segment, in evaluation order."""
        return self.before_stage + self.after_stage

    @property
    def ids(self) -> list[str]:
        """Segment ids in evaluation order."""
        return [segment.id for segment in self.order]


# ---- validation and ordering --------------------------------------------------

def compile_segments(segments: Sequence[SegmentDef], stages: Sequence[StageRule] = ()) -> CompiledSegments:
    """Validate and order segments and stage rules for evaluation (`state.segment_graph.stage_plan`).

    Raises SegmentDefinitionError for a set that cannot be evaluated.
    """
    before, after = stage_plan(segments, stages)
    conditions = [s.when for s in before + after] + [r.when for r in stages]
    leaves = dict.fromkeys(n for c in conditions for n in walk(c) if type(n) in _FLIPS)
    return CompiledSegments(tuple(before), tuple(after), tuple(stages), tuple(leaves))


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


# ---- evaluation: one entry per condition kind ------------------------------------

Members = Mapping[str, bool]


def evaluate_condition(condition: Condition, view: ContactView, member_of: Members) -> bool:
    """Whether `condition` holds for the contact at `view.now`.

    `member_of` holds the memberships already decided in this pass, for
    `InSegment`; ids missing from it are asked of the view.
    """
    holds = _HOLDS.get(type(condition))
    if holds is None:
        raise TypeError(f"unknown condition {type(condition).__name__}")
    return holds(condition, view, member_of)


def _all(c: All, view: ContactView, members: Members) -> bool:
    return all(evaluate_condition(x, view, members) for x in c.of)


def _any(c: AnyOf, view: ContactView, members: Members) -> bool:
    return any(evaluate_condition(x, view, members) for x in c.of)


def _not(c: Not, view: ContactView, members: Members) -> bool:
    return not evaluate_condition(c.of, view, members)


def _trait(c: Trait, view: ContactView, members: Members) -> bool:
    value = view.trait(c.name)
    return compare(c.op, MISSING if value is None else value, c.value)


def _tag(c: HasTag, view: ContactView, members: Members) -> bool:
    return view.has_tag(c.tag)


def _list(c: InList, view: ContactView, members: Members) -> bool:
    return view.in_list(c.list)


def _score(c: Score, view: ContactView, members: Members) -> bool:
    return compare(c.op, view.score(), c.value)


def _temperature(c: TemperatureIs, view: ContactView, members: Members) -> bool:
    return view.temperature() in c.values


def _stage(c: StageIs, view: ContactView, members: Members) -> bool:
    return view.stage() in c.values


def _count(c: WindowCount, view: ContactView, members: Members) -> bool:
    return compare(c.op, view.window_count(c.dimension, c.value, c.window_s, c.event), c.n)


def _count_flips(c: WindowCount, view: ContactView) -> Iterator[float]:
    at = view.next_window_change(c.dimension, c.value, c.window_s, c.event)
    if at is not None:
        yield at


def _absent(c: NoEventWithin, view: ContactView, members: Members) -> bool:
    last = view.last_event_at(c.event)
    if last is None:
        return not c.ever_happened
    return last <= view.now - c.window_s


def _absent_flips(c: NoEventWithin, view: ContactView) -> Iterator[float]:
    last = view.last_event_at(c.event)
    if last is not None:
        yield last + c.window_s


def _rfm(c: Rfm, view: ContactView, members: Members) -> bool:
    r, f, m = view.rfm()
    return compare(c.op, {"r": r, "f": f, "m": m}[c.part], c.value)


def _cart(c: Cart, view: ContactView, members: Members) -> bool:
    updated = view.cart_updated_at()
    if updated is None:
        return False
    value = view.cart_value()
    age = view.now - updated
    return ((c.min_value is None or value >= c.min_value)
            and (c.max_value is None or value <= c.max_value)
            and (c.min_age_s is None or age >= c.min_age_s)
            and (c.max_age_s is None or age < c.max_age_s))


def _cart_flips(c: Cart, view: ContactView) -> Iterator[float]:
    updated = view.cart_updated_at()
    if updated is not None:
        for bound in (c.min_age_s, c.max_age_s):
            if bound is not None:
                yield updated + bound


def _anniversary(c: Anniversary, view: ContactView, members: Members) -> bool:
    origin = parse_date(view.trait(c.field))
    return origin is not None and anniversary_holds(origin, c.within_days, _utc_day(view.now))


def _anniversary_flips(c: Anniversary, view: ContactView) -> Iterator[float]:
    origin = parse_date(view.trait(c.field))
    if origin is not None:
        day = _next_anniversary_change(origin, c.within_days, _utc_day(view.now))
        if day is not None:
            yield _midnight(day)


def _total(c: Total, view: ContactView, members: Members) -> bool:
    return compare(c.op, view.total(c.counter), c.value)


def _segment(c: InSegment, view: ContactView, members: Members) -> bool:
    found = members.get(c.segment)
    return view.in_segment(c.segment) if found is None else found


def _utm_source(c: UtmSource, view: ContactView, members: Members) -> bool:
    source = view.utm_source()
    return source is not None and source.casefold() in {v.casefold() for v in c.values}


def _page_url(c: PageUrl, view: ContactView, members: Members) -> bool:
    url = view.page_url()
    return url is not None and c.contains in url


def _returning(c: Returning, view: ContactView, members: Members) -> bool:
    return (view.total("sessions") > 1) == c.value


def _in_workflow(c: InWorkflow, view: ContactView, members: Members) -> bool:
    step = view.workflow_step(c.workflow)
    return step is not None and (c.step is None or step == c.step)


_HOLDS: Final[dict[type, Callable[[Any, ContactView, Members], bool]]] = {
    All: _all, AnyOf: _any, Not: _not, Trait: _trait, HasTag: _tag, InList: _list, Score: _score,
    TemperatureIs: _temperature, StageIs: _stage, WindowCount: _count, NoEventWithin: _absent, Rfm: _rfm,
    Cart: _cart, Anniversary: _anniversary, Total: _total, InSegment: _segment,
    UtmSource: _utm_source, PageUrl: _page_url, Returning: _returning, InWorkflow: _in_workflow,
}
"""How each condition kind holds."""
_FLIPS: Final[dict[type, Callable[[Any, ContactView], Iterator[float]]]] = {
    WindowCount: _count_flips, NoEventWithin: _absent_flips, Cart: _cart_flips, Anniversary: _anniversary_flips,
}
"""When the kinds that change with time alone may next flip (the others change only with events)."""


def evaluate_segments(compiled: CompiledSegments, view: ContactView) -> set[str]:
    """Ids of the segments the contact is in at `view.now`."""
    member_of: dict[str, bool] = {}
    for segment in compiled.order:
        member_of[segment.id] = evaluate_condition(segment.when, view, member_of)
    return {sid for sid, member in member_of.items() if member}


def stage_of(stages: Iterable[StageRule], view: ContactView, member_of: Members | None = None) -> str:
    """The journey stage: the first rule that holds, else "awareness" (`member_of`: segments decided so far)."""
    for rule in stages:
        if evaluate_condition(rule.when, view, member_of or {}):
            return rule.stage
    return DEFAULT_STAGE


def changes(before: set[str], after: set[str]) -> tuple[list[str], list[str]]:
    """Segments entered and exited between two evaluations, each sorted."""
    return sorted(after - before), sorted(before - after)


# ---- timers -------------------------------------------------------------------

def time_leaves(conditions: Iterable[Condition]) -> tuple[Condition, ...]:
    """The leaves of `conditions` that may flip with time alone (windows, absences, cart age, anniversaries)."""
    return tuple(dict.fromkeys(n for c in conditions for n in walk(c) if type(n) in _FLIPS))


def leaves_flip(leaves: Iterable[Condition], view: ContactView) -> float | None:
    """The earliest moment after `view.now` when one of `leaves` (from `time_leaves`) may change, or None."""
    now = view.now
    return min((at for leaf in leaves for at in _FLIPS[type(leaf)](leaf, view) if at > now), default=None)


def next_flip(compiled: CompiledSegments, view: ContactView) -> float | None:
    """The earliest moment after `view.now` when a time-driven leaf may change, or None.

    Time-driven leaves are windows, absences, cart age and anniversaries
    (of segments and of stage rules). The caller re-evaluates at that
    moment; a flip that turns out not to change any membership costs one
    evaluation.
    """
    now = view.now
    flips = [at for leaf in compiled.time_leaves for at in _FLIPS[type(leaf)](leaf, view) if at > now]
    return min(flips, default=None)

"""Lead scoring from rules as data: points per event, penalties for silence, and decay.

A `ScoringRule` gives points when an event matches: on every match
(`repeatable`), on the first match ever (`once`), or at most `max_times`
within any sliding `per_window_s` (`at_most`; window 0 means ever). An
`AbsenceRule` takes points when an expected event does not follow another
one in time, e.g. −5 when the nurturing e-mail sent is not opened within 3
days; `correlate_on` ties the two events by a property (the e-mail id).

Points decay per score group, exponentially with the group's half-life.
Each group keeps `(value, as_of)` and decay is folded in lazily, only when
points are added or the score is read, so a contact costs nothing between
events. Decay is linear, so points may arrive out of order: points older
than `as_of` are decayed forward to it.

Everything uses event time passed in by the caller (the time of the event,
or the deadline for absences), never the wall clock: a replay gives the
same scores. The operator calls `apply_scoring` per event, schedules a
timer at `scoring_due`, and calls `on_scoring_time` when it passes.

Rules are looked up by id when they act, so a new configuration applies to
later events and to deadlines that fire after it (a deleted absence rule
takes no points; a changed one takes its new points).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.rules.live_config import LiveConfig
from dataflows.rules.matching import MISSING, conditions_hold, field_of
from state.config import AbsenceRule, ScoringRule, Thresholds
from state.events import Event, event_key

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

HISTORY_CAP: Final = 50
RENDERED_HISTORY: Final = 30
"""Score points the profile shows (the contact explorer's chart); the state keeps `HISTORY_CAP`."""
# More pending deadlines than this means a flood (thousands of e-mails with
# distinct ids); new ones are then not started rather than growing state.
MAX_PENDING: Final = 256

Deadline = tuple[float, str, str | None]
"""A pending absence: (due, absence rule id, correlation value)."""


class ScoreState(msgspec.Struct, array_like=True, gc=False):
    """One contact's scoring state; msgpack-encodable, updated in place.

    `array_like` drops field names from the encoding (fields may only be
    appended, with defaults). No field can hold a reference back to the
    struct, so it can skip the garbage collector (`gc=False`).
    """

    # group → (value at as_of, as_of)
    groups: dict[str, tuple[float, float]] = msgspec.field(default_factory=dict)
    # ids of `once` rules that have scored
    once: list[str] = msgspec.field(default_factory=list)
    # `at_most` rule id → times of its scoring matches, ascending, at most max_times
    capped: dict[str, list[float]] = msgspec.field(default_factory=dict)
    # pending absences, ascending by due
    pending: list[Deadline] = msgspec.field(default_factory=list)
    # (epoch seconds, milli-points): integers encode in about half the bytes of floats
    history: list[tuple[int, int]] = msgspec.field(default_factory=list)


def _decayed(value: float, elapsed: float, half_life: float) -> float:
    if half_life <= 0 or elapsed <= 0:
        return value
    return value * math.exp2(-elapsed / half_life)


def _add_points(state: ScoreState, group: str, points: float, at: float, half_life: float) -> None:
    entry = state.groups.get(group)
    if entry is None:
        state.groups[group] = (points, at)
        return
    value, as_of = entry
    if at >= as_of:
        state.groups[group] = (_decayed(value, at - as_of, half_life) + points, at)
    else:  # late points: decay them forward to as_of
        state.groups[group] = (value + _decayed(points, as_of - at, half_life), as_of)


def add_points(state: ScoreState, group: str, points: float, at: float, live: LiveConfig) -> None:
    """Add `points` to `group` at `at` (a workflow's score step) and chart the new score."""
    _add_points(state, group, points, at, live.scoring.half_life(group))
    _record(state, at, live)


def current_score(state: ScoreState, now: float, live: LiveConfig) -> float:
    """The score read at `now`: every group decayed to `now` and summed.

    Reading before a group's last change returns its value at that change
    (decay never runs backwards).
    """
    return sum(_decayed(value, now - as_of, live.scoring.half_life(group))
               for group, (value, as_of) in state.groups.items())


def _record(state: ScoreState, at: float, live: LiveConfig) -> None:
    history = state.history
    # Monotonic times: a late event is charted when it was applied, not in the past.
    moment = max(round(at), history[-1][0]) if history else round(at)
    history.append((moment, round(current_score(state, moment, live) * 1000)))
    if len(history) > HISTORY_CAP:
        del history[:-HISTORY_CAP]


def score_history(state: ScoreState) -> list[tuple[float, float]]:
    """(epoch seconds, score right after the change) for the last changes, oldest first."""
    return [(float(moment), milli / 1000) for moment, milli in state.history]


def temperature_of(score: float, thresholds: Thresholds) -> str:
    """`cold` below `warm`, `warm` from `warm` up to below `hot`, `hot` from `hot` on."""
    if score >= thresholds.hot:
        return "hot"
    return "warm" if score >= thresholds.warm else "cold"


def _may_score(state: ScoreState, rule: ScoringRule, at: float) -> bool:
    """Whether this match of `rule` scores, recording it when it does."""
    if rule.mode == "repeatable":
        return True
    if rule.mode == "once":
        if rule.id in state.once:
            return False
        state.once.append(rule.id)
        return True
    limit = rule.max_times
    if limit <= 0:
        return False
    window = rule.per_window_s or math.inf
    times = state.capped.get(rule.id, [])
    candidate = sorted([*times, at])
    # Too many when any limit+1 consecutive matches fit inside one window.
    if any(candidate[i + limit] - candidate[i] < window for i in range(len(candidate) - limit)):
        return False
    state.capped[rule.id] = candidate[-limit:]
    return True


def _correlation(rule: AbsenceRule, event: Event) -> str | None:
    if rule.correlate_on is None:
        return None
    value = field_of(event, rule.correlate_on)
    if value is MISSING or value is None:
        return None
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _find(state: ScoreState, rule_id: str, correlation: str | None) -> int:
    for i, (_, pending_id, pending_correlation) in enumerate(state.pending):
        if pending_id == rule_id and pending_correlation == correlation:
            return i
    return -1


def _start(state: ScoreState, due: float, rule_id: str, correlation: str | None) -> bool:
    """Start (or push back) the deadline of (rule, correlation); one per pair."""
    i = _find(state, rule_id, correlation)
    if i >= 0:
        if state.pending[i][0] >= due:
            return False
        del state.pending[i]
    elif len(state.pending) >= MAX_PENDING:
        return False
    bisect.insort(state.pending, (due, rule_id, correlation), key=lambda d: d[0])
    return True


def _cancel(state: ScoreState, rule: AbsenceRule, correlation: str | None, at: float) -> bool:
    """The expected event came: cancel the deadline if `at` lies in [start, due)."""
    i = _find(state, rule.id, correlation)
    if i < 0:
        return False
    due = state.pending[i][0]
    if not due - rule.within_s <= at < due:
        return False
    del state.pending[i]
    return True


def _fire_due(state: ScoreState, now: float, live: LiveConfig) -> bool:
    index = live.scoring
    fired = False
    while state.pending and state.pending[0][0] <= now:
        due, rule_id, _ = state.pending.pop(0)
        fired = True
        rule = index.absence_by_id.get(rule_id)
        if rule is not None and rule.points:
            _add_points(state, rule.group, rule.points, due, live.scoring.half_life(rule.group))
            _record(state, due, live)
    return fired


def apply_scoring(state: ScoreState, event: Event, at: float, live: LiveConfig) -> bool:
    """Apply one event at event time `at`; True when the score or the pending deadlines changed.

    Deadlines due by `at` fire first, so the result does not depend on
    whether the operator's timer ran before this event arrived.
    """
    changed = on_scoring_time(state, at, live)
    index = live.scoring
    key = event_key(event)  # rules are indexed by key: only their conditions are left to check
    scored = False
    for rule in index.scoring.get(key, ()):
        if rule.points and conditions_hold(rule.match.where, event) and _may_score(state, rule, at):
            _add_points(state, rule.group, rule.points, at, live.scoring.half_life(rule.group))
            scored = True
    for absence in index.expect.get(key, ()):
        if state.pending and conditions_hold(absence.expect.where, event):
            changed |= _cancel(state, absence, _correlation(absence, event), at)
    for absence in index.after.get(key, ()):
        if conditions_hold(absence.after.where, event):
            changed |= _start(state, at + absence.within_s, absence.id, _correlation(absence, event))
    if scored:
        _record(state, at, live)
    return changed or scored


def scoring_due(state: ScoreState) -> float | None:
    """When the earliest pending absence deadline falls due (event time), if any."""
    return state.pending[0][0] if state.pending else None


def on_scoring_time(state: ScoreState, now: float, live: LiveConfig) -> bool:
    """Apply every absence whose deadline is ≤ `now`, at its deadline; True if any fired."""
    if not state.pending or state.pending[0][0] > now:
        return False
    return _fire_due(state, now, live)


def merge_scores(into: ScoreState, other: ScoreState, now: float, live: LiveConfig) -> None:
    """Fold `other` (a contact found to be the same person) into `into`.

    Scores add up, each decayed by its own age (adding other's value at its
    `as_of` is exactly that, decay being linear); once-rules that fired on
    either side stay fired; at-most match times combine (the latest
    `max_times` are kept); pending deadlines are kept, the later one when
    both wait for the same rule and correlation. A contact with no score
    history takes the other's, so a visitor signing in as a new user keeps
    their chart; two histories are not interleaved (each point is one
    contact's score, not the sum).
    """
    for group, (value, as_of) in other.groups.items():
        _add_points(into, group, value, as_of, live.scoring.half_life(group))
    into.once.extend(rule_id for rule_id in other.once if rule_id not in into.once)
    index = live.scoring
    for rule_id, times in other.capped.items():
        combined = sorted([*into.capped.get(rule_id, []), *times])
        rule = index.scoring_by_id.get(rule_id)
        limit = rule.max_times if rule is not None and rule.mode == "at_most" else len(combined)
        into.capped[rule_id] = combined[-limit:] if limit > 0 else []
    for due, rule_id, correlation in other.pending:
        _start(into, due, rule_id, correlation)
    if not into.history:  # a visitor signing in as a new user: the chart keeps the visitor's past
        into.history.extend(other.history)
    if other.groups:
        _record(into, now, live)


CROSSING_MARGIN_S: Final = 0.001
_BISECTIONS: Final = 60


def next_score_crossing(state: ScoreState, thresholds: Sequence[float], now: float,
                        live: LiveConfig) -> float | None:
    """When decay alone next carries the score across one of `thresholds`, or None.

    Without it a contact would stay "warm" after its points had faded, until
    some event or other timer re-evaluated it. The answer is exact for the
    usual single decaying group and found by bisection when several groups
    decay at different rates in the same direction; groups decaying in
    opposite directions are re-checked every 1/16 half-life instead.
    The moment returned is just past the crossing, so a `gte` condition has
    really turned false when the timer fires.
    """
    constant = 0.0
    decaying: list[tuple[float, float]] = []  # (value at now, half-life)
    for group, (value, as_of) in state.groups.items():
        half_life = live.scoring.half_life(group)
        if half_life <= 0:
            constant += value
        elif value:
            decaying.append((_decayed(value, now - as_of, half_life), half_life))
    if not decaying:
        return None
    if len({v > 0 for v, _ in decaying}) > 1:
        return now + min(h for _, h in decaying) / 16
    moving = sum(v for v, _ in decaying)
    crossings = [x for t in thresholds if (x := _time_to_reach(decaying, t - constant, moving)) is not None]
    return now + min(crossings) + CROSSING_MARGIN_S if crossings else None


def _time_to_reach(decaying: list[tuple[float, float]], target: float, moving: float) -> float | None:
    """Seconds until Σ vᵢ·2^(−x/hᵢ) reaches `target` on its way to 0, if it ever does."""
    if not (0 < target <= moving or moving <= target < 0):
        return None
    if len(decaying) == 1:
        value, half_life = decaying[0]
        return max(0.0, -half_life * math.log2(target / value))
    low, high = 0.0, 64 * max(h for _, h in decaying)
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        if abs(sum(v * math.exp2(-mid / h) for v, h in decaying)) > abs(target):
            low = mid
        else:
            high = mid
    return high


class ScoringCapability(Capability[ScoreState]):
    """Lead score with decay and absence rules; the profile's score, temperature and history."""

    name = "scoring"
    part = ScoreState

    def apply(self, part: ScoreState, event: Event, ctx: Context) -> None:
        apply_scoring(part, event, ctx.at, ctx.live)

    def tick(self, part: ScoreState, ctx: Context) -> None:
        on_scoring_time(part, ctx.now, ctx.live)

    def merge(self, into: ScoreState, other: ScoreState, ctx: Context) -> None:
        merge_scores(into, other, ctx.now, ctx.live)

    def due(self, part: ScoreState, view: StateView) -> float | None:
        deadlines = [scoring_due(part), next_score_crossing(part, view.live.score_thresholds, view.now, view.live)]
        return min((d for d in deadlines if d is not None), default=None)

    def render(self, part: ScoreState, view: StateView) -> Mapping[str, Any]:
        return {"score": round(view.score(), 3), "temperature": view.temperature(),
                "score_history": score_history(part)[-RENDERED_HISTORY:]}

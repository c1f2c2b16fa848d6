"""Whether an event is the one a rule is about: shared by scoring, absence and tag rules.

A rule names an event by its *key* (the track name, `page` for page and
screen views, `identify`, `alias`, `group`) and adds conditions on the
event's fields: `properties` for track, page and screen, `traits` for
identify and group. Unknown track names are fine: a rule about
`Infographic Downloaded` matches it like any e-commerce name.

Comparison rules, chosen to be predictable for marketers writing JSON:

- A missing field matches nothing except `ne` (it is not equal to anything)
  and `exists` with value `false`.
- Numbers compare numerically, and a numeric string counts as a number when
  the other side is a real number (`"42" eq 42`), because trackers send
  prices and quantities either way. Two strings are equal only as text
  (`"01"` is not `"1"`: zip codes); the ordering operators compare them as
  numbers when both are numeric (`"10" gt "9"`), else as text (ISO dates
  order correctly). Booleans are never numbers (`true` is not `1`), and a
  value of another type (list, object, null) never orders.
- `in`: the value is one of the expected list; a list value matches when any
  element is. `contains`: substring for strings (case-sensitive), element for
  lists, key for objects.
- `exists`: present and not null; `{"op": "exists", "value": false}` asks for
  the opposite.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Final

from state.config import CompareOp, EventMatch, PropertyCondition
from state.events import Event, Group, Identify, Page, Screen, Track, event_key


class _Missing:
    """The value of a field the event does not have (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def field_of(event: Event, name: str) -> object:
    """The value conditions see under `name`, or MISSING.

    Page and screen views also expose their top-level `name` and `category`
    when `properties` lacks them, so `page where name eq Pricing` works
    whichever way the tracker sent the name.
    """
    if isinstance(event, Track):
        return event.properties.get(name, MISSING)
    if isinstance(event, Page | Screen):
        value = event.properties.get(name, MISSING)
        if value is MISSING and name in ("name", "category"):
            top = getattr(event, name)
            return MISSING if top is None else top
        return value
    if isinstance(event, Identify | Group):
        return event.traits.get(name, MISSING)
    return MISSING


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: object) -> float | None:
    """The value as a finite-or-infinite float, or None when it is not numeric."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    return None


def _equal(actual: object, expected: object) -> bool:
    if _is_number(actual) or _is_number(expected):
        a, b = _number(actual), _number(expected)
        return a is not None and b is not None and a == b
    return bool(actual == expected)


def _ordered(op: str, actual: object, expected: object) -> bool:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return _ORDER[op](a, b)  # numeric strings too: "10" > "9", unlike as text
    if isinstance(actual, str) and isinstance(expected, str):
        return _ORDER[op](actual, expected)
    return False


def _member(actual: object, expected: object) -> bool:
    if not isinstance(expected, list | tuple | set | frozenset):
        return _equal(actual, expected)
    values = actual if isinstance(actual, list | tuple) else (actual,)
    return any(_equal(value, candidate) for value in values for candidate in expected)


def _contains(actual: object, expected: object) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list | tuple):
        return any(_equal(element, expected) for element in actual)
    if isinstance(actual, dict):
        return isinstance(expected, str) and expected in actual
    return False


def compare(op: CompareOp, actual: object, expected: object) -> bool:
    """Whether `actual <op> expected` holds; `actual` is MISSING for an absent field."""
    if op == "exists":
        present = actual is not MISSING and actual is not None
        return present if expected is None or bool(expected) else not present
    if actual is MISSING:
        return op == "ne"
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    if op in _ORDER:
        return _ordered(op, actual, expected)
    if op == "in":
        return _member(actual, expected)
    if op == "contains":
        return _contains(actual, expected)
    raise ValueError(f"unknown comparison operator {op!r}")


def conditions_hold(where: list[PropertyCondition], event: Event) -> bool:
    """Whether every condition holds on the event's fields (no conditions: true)."""
    return all(compare(c.op, field_of(event, c.name), c.value) for c in where)


def matches(match: EventMatch, event: Event) -> bool:
    """Whether the event is the one `match` describes: same key and every condition holds."""
    return event_key(event) == match.event and conditions_hold(match.where, event)

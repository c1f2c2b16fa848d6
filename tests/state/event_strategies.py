"""Hypothesis strategies for raw Segment events, friendly and hostile, and a model of what is wrong with each.

`raw_events(now)` builds the JSON a client sends: every event type,
e-commerce names and properties, traits, context, any unicode, odd ids and
any UTC offset; with `hostile=True` up to two mutations are applied on top
(integers beyond 64 bits, negative or huge amounts, nesting just below and
above the limit, long strings, control characters in ids, timestamps near
year 1 and 9999, reserved names, internal types, missing ids, broken JSON).

`expected_faults` is the model: what the Segment spec and Attimo's bounds
say is wrong with the event, independently of the validator's code. An event
without faults must be accepted; one with faults must be refused with one of
the `FAULT_REASONS` of its faults.

Strategies are built once (module constants): building them per draw costs
more than the examples themselves.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import msgspec
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from state.events import EVENT_TYPES
from state.json_bounds import INT_MAX, INT_MIN, MAX_DEPTH
from state.validation import (
    AMOUNT_PROPERTIES,
    KEY_PROPERTIES,
    MAX_AMOUNT,
    MAX_QUANTITY,
    NUMERIC_PROPERTIES,
    Limits,
    is_blocked_id,
)

LONG_FUZZ: Final = os.environ.get("ATTIMO_LONG_FUZZ", "") not in ("", "0")
"""ATTIMO_LONG_FUZZ=1: every generated-input test runs 50 times as many examples, freshly random."""
MAX_EVENT_BYTES: Final = Limits().max_event_bytes
CONTROL_CHARS: Final = "".join(map(chr, [*range(0x20), 0x7F]))
BLOCKED: Final = ("null", "undefined", "Anonymous", "0", "-1", "nil", "None", " ", "000", "--", "NULL ")
ODD_IDS: Final = ("a/b", "../x", "..", ".", "%2F", "a%20b", "{tag}", "}{", "ü", "😀", "a b", "?q=1#f",
                  " leading", "trailing ", "\u2028", "\x85", "\u200b", "\\", "'\"", "<script>", "*", "a:b")
BIG_INTS: Final = (INT_MAX + 1, INT_MIN - 1, 2**64, 1180591620717411303424, -(10**30), 10**40)
EDGE_FLOATS: Final = (1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0, MAX_AMOUNT,
                      MAX_QUANTITY, 2.0**53 + 1, 1e-300)
ECOMMERCE: Final = ("Products Searched", "Product List Viewed", "Product Viewed", "Product Added",
                    "Product Removed", "Cart Viewed", "Checkout Started", "Order Completed", "Coupon Applied",
                    "Email Opened", "Email Link Clicked", "Unsubscribed", "Form Submitted", "Signed Up")
EXTREME_TIMES: Final = ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "0001-01-01T00:59:59+01:00",
                        "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999+00:00",
                        "0001-01-01T00:00:00-14:00", "9999-12-31T23:00:00+14:00")
BAD_TIMES: Final = ("yesterday", "2026-13-01T00:00:00Z", "", "2026-02-30T00:00:00Z", 12345, None, True)
ID_FIELDS: Final = ("messageId", "anonymousId", "userId", "previousId", "groupId")
HOSTILE: Final = ("bigint", "amount", "deep", "long", "id_control", "id_long", "id_empty", "id_type", "no_ids",
                  "blocked", "reserved", "internal_type", "time_extreme", "time_far", "time_bad", "literal",
                  "truncate", "shape", "missing", "long_key", "blocked_device")


@dataclass(frozen=True)
class RawJson:
    """A JSON literal written as is (numbers out of range, lone surrogates …)."""

    text: str


# Literals and what they decode to (None: refused by the decoder).
LITERALS: Final[dict[str, object]] = {
    "1e400": None, "-1e400": None, "1e-400": 0.0, "-0": 0, "1E2": 100.0, "-0.0e0": -0.0,
    '"\\ud800"': None, '"\\u0000"': "\x00", "123456789012345678901234567890": 123456789012345678901234567890,
}

def fuzz_settings(examples: int, shrink: bool = True) -> settings:
    """Bounded and repeatable in CI (derandomized); 50× longer and freshly random with ATTIMO_LONG_FUZZ=1.

    `shrink=False` reports the first failing example as found: for tests
    against real processes, where each try costs seconds.
    """
    return settings(
        max_examples=examples * 50 if LONG_FUZZ else examples, deadline=None, database=None,
        derandomize=not LONG_FUZZ, print_blob=True,
        # No "explain" phase: tracing every line costs more than the examples themselves.
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, *([Phase.shrink] if shrink else [])),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example])


# ---- strategies, built once ---------------------------------------------------------

ANY_CHAR: Final = st.characters(exclude_categories=["Cs"])
SAFE_CHAR: Final = st.characters(exclude_categories=["Cs"], exclude_characters=CONTROL_CHARS)
BOOLS: Final = st.booleans()
TEXT: Final = st.text(ANY_CHAR, max_size=30)
KEYS: Final = st.text(ANY_CHAR, max_size=12)
CLEAN_IDS: Final = st.one_of(
    st.uuids().map(str), st.emails(), st.text(SAFE_CHAR, min_size=1, max_size=40), st.sampled_from(ODD_IDS),
).filter(lambda s: 0 < len(s) <= 200 and not is_blocked_id(s))
"""Ids a real client may send: UUIDs, e-mails, any non-control unicode, characters that need URL-encoding."""
LEAVES: Final = st.one_of(
    st.none(), BOOLS, st.integers(INT_MIN, INT_MAX), st.sampled_from((0, -1, 2**53, INT_MAX, INT_MIN)),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGE_FLOATS), TEXT)
JSON_VALUES: Final = st.recursive(LEAVES, lambda kids: st.lists(kids, max_size=4)
                                  | st.dictionaries(KEYS, kids, max_size=4), max_leaves=12)
"""Any JSON value within the bounds (64-bit integers, finite floats, shallow)."""
FREE_OBJECTS: Final = st.dictionaries(KEYS, JSON_VALUES, max_size=3)
AMOUNTS: Final = {name: st.one_of(st.integers(0, int(ceiling)), st.floats(0, ceiling), st.sampled_from((0, 1, ceiling)))
                  for name in NUMERIC_PROPERTIES
                  for ceiling in [MAX_QUANTITY if name == "quantity" else MAX_AMOUNT]}
"""Plausible amounts per numeric property, within its range."""
PRODUCTS: Final = st.lists(st.fixed_dictionaries(
    {"product_id": CLEAN_IDS, "price": AMOUNTS["price"], "quantity": AMOUNTS["quantity"]}), max_size=3)
PROPERTY_NAMES: Final = st.lists(st.sampled_from((*NUMERIC_PROPERTIES, "product_id", "sku", "name", "category",
                                                  "currency", "order_id", "coupon", "email_id", "products")),
                                 max_size=6, unique=True)
CATEGORIES: Final = st.sampled_from(("shoes", "bags", "", "Shoes", "👟")) | st.text(ANY_CHAR, max_size=20)
TRACK_NAMES: Final = st.sampled_from(ECOMMERCE) | st.text(SAFE_CHAR, min_size=1, max_size=30).filter(
    lambda s: not s.lower().startswith("attimo "))
BIRTHDAYS: Final = st.sampled_from(("2000-02-29", "0001-01-01", "9999-12-31", "1990-06-15T00:00:00Z", "not a date",
                                    "2000-13-45")) | st.text(max_size=12)
MUTATIONS: Final = st.lists(st.sampled_from(HOSTILE), max_size=2)


@functools.cache
def near(now: datetime) -> st.SearchStrategy[str]:
    """A timestamp within an hour of `now`, in any UTC offset (or naive, read as UTC)."""
    def render(seconds: float, offset_min: int, naive: bool) -> str:
        moment = now + timedelta(seconds=seconds)
        if naive:
            return moment.replace(tzinfo=None).isoformat()
        return moment.astimezone(timezone(timedelta(minutes=offset_min))).isoformat()
    return st.builds(render, st.floats(-3600, 3600), st.integers(-14 * 60, 14 * 60), BOOLS)


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value `depth` levels deep (objects and lists alternating)."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


# ---- generated events -------------------------------------------------------------------

@dataclass
class Generated:
    """A raw event as a client sends it, the batch's sentAt, and the faults the model sees in it."""

    raw: bytes
    event: Any
    batch_sent_at: datetime | None
    faults: frozenset[str]


def _free(draw: st.DrawFn) -> dict[str, Any]:
    """Free-form fields besides the known ones (the amounts keep their own, valid values)."""
    return {k: v for k, v in draw(FREE_OBJECTS).items() if k not in NUMERIC_PROPERTIES and k != "products"}


def _ecommerce_properties(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in draw(PROPERTY_NAMES):
        if name in NUMERIC_PROPERTIES:
            props[name] = draw(AMOUNTS[name])
        elif name == "products":
            props[name] = draw(PRODUCTS)
        elif name == "category":
            props[name] = draw(CATEGORIES)
        else:
            props[name] = draw(CLEAN_IDS) if draw(BOOLS) else draw(st.integers(INT_MIN, INT_MAX))
    props.update(_free(draw))
    return props


def _traits(draw: st.DrawFn) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    if draw(BOOLS):
        traits["email"] = draw(CLEAN_IDS) if draw(BOOLS) else draw(st.emails())
    if draw(BOOLS):
        traits["birthday"] = draw(BIRTHDAYS)
    if draw(BOOLS):
        traits["loyalty_points"] = draw(st.integers(INT_MIN, INT_MAX))
    traits.update(_free(draw))
    return traits


@st.composite
def raw_events(draw: st.DrawFn, now: datetime, anonymous_pool: Sequence[str] = (), user_pool: Sequence[str] = (),
               hostile: bool = True, serial: int = 0, force: str | None = None) -> Generated:
    """One raw event received at `now`; with `hostile`, up to two hostile mutations are applied to it.

    `force` names a mutation (one of `HOSTILE`) that is always applied, with at most one other.

    Ids come from the pools when given (so that events of a story meet on
    the same visitors and users); a messageId, when present, ends with
    `#serial` so that no two events of a story share one.
    """
    kind = draw(st.sampled_from(("page", "screen", "track", "identify", "alias", "group")))
    anon = st.sampled_from(anonymous_pool) if anonymous_pool else CLEAN_IDS
    user = st.sampled_from(user_pool) if user_pool else CLEAN_IDS
    event: dict[str, Any] = {"type": kind}
    who = draw(st.sampled_from(("anonymous", "user", "both")))
    if who != "user":
        event["anonymousId"] = draw(anon)
    if who != "anonymous" or kind in ("identify", "alias"):
        event["userId"] = draw(user)
    if kind == "alias":
        event["previousId"] = event.pop("anonymousId", None) or draw(anon)
    if kind == "group":
        event["groupId"] = draw(CLEAN_IDS)
    if draw(BOOLS):
        event["messageId"] = f"{draw(CLEAN_IDS)[:150]}#{serial}"
    if draw(BOOLS):
        event["timestamp"] = draw(near(now))
    elif draw(BOOLS):
        event["originalTimestamp"] = draw(near(now))
    if draw(BOOLS):
        event["sentAt"] = draw(near(now))
    batch_sent_at = now + timedelta(seconds=draw(st.floats(-60, 60))) if draw(BOOLS) else None
    if draw(BOOLS):
        event["context"] = {"page": {"path": draw(TEXT), "url": "https://shop.example/"},
                            "userAgent": draw(TEXT), **draw(FREE_OBJECTS)}
    if kind == "track":
        event["event"] = draw(TRACK_NAMES)
    if kind in ("page", "screen"):
        event["name"] = draw(TEXT)
    if kind in ("page", "screen", "track") and draw(BOOLS):
        event["properties"] = _ecommerce_properties(draw)
    if kind in ("identify", "group") and draw(BOOLS):
        event["traits"] = _traits(draw)
    if draw(BOOLS):
        event["unknownField"] = draw(JSON_VALUES)
    truncate = False
    mutations = draw(MUTATIONS) if hostile or force else []
    if force is not None:
        mutations = [force, *mutations[:1]]
    for mutation in mutations:
        truncate |= _mutate(draw, event, mutation, now)
    raw = dumps(event, ascii_only=draw(BOOLS))
    if truncate:
        raw = raw[:-1]
    faults = expected_faults(event, raw, batch_sent_at, now) | ({"json"} if truncate else set())
    return Generated(raw, event, batch_sent_at, frozenset(faults))


def _container(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """A free-form object of the event to put a hostile value into (created if there is none)."""
    names = [n for n in ("properties", "traits", "context", "integrations") if isinstance(event.get(n), dict)]
    if not names:
        event["integrations"] = {}
        names = ["integrations"]
    box: dict[str, Any] = event[draw(st.sampled_from(names))]
    return box


def _mutate(draw: st.DrawFn, event: dict[str, Any], mutation: str, now: datetime) -> bool:
    """Apply one hostile mutation in place; True when the raw JSON must be cut short."""
    id_field = draw(st.sampled_from(ID_FIELDS))
    if mutation == "bigint":
        number = draw(st.sampled_from(BIG_INTS))
        _container(draw, event)[draw(st.sampled_from(("loyalty_points", "n", "price")))] = draw(
            st.sampled_from((number, [number], {"x": number})))
    elif mutation == "amount":
        box = event.setdefault("traits" if event.get("type") == "identify" else "properties", {})
        value = draw(st.sampled_from((-1, -0.01, MAX_AMOUNT * 10, MAX_QUANTITY + 1, MAX_AMOUNT + 1, "9", True, [1],
                                      {"v": 1}, 5e-324, -5e-324)))
        name = draw(st.sampled_from(NUMERIC_PROPERTIES))
        if isinstance(box, dict):
            if draw(BOOLS):
                box[name] = value
            else:
                box["products"] = [{"product_id": "p", name: value}] if draw(BOOLS) else value
    elif mutation == "deep":
        _container(draw, event)["deep"] = nested(draw(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 4)))
    elif mutation == "long":
        size = draw(st.sampled_from((1_000, 20_000, MAX_EVENT_BYTES - 200, MAX_EVENT_BYTES + 10, 40_000)))
        _container(draw, event)["blob"] = draw(st.sampled_from(("x", "é", "😀"))) * size
    elif mutation == "id_control":
        value = str(event.get(id_field) or "id")
        at = draw(st.integers(0, len(value)))
        event[id_field] = value[:at] + draw(st.sampled_from(CONTROL_CHARS)) + value[at:]
    elif mutation == "id_long":
        event[id_field] = "i" * draw(st.integers(201, 260))
    elif mutation == "id_empty":
        event[id_field] = ""
    elif mutation == "id_type":
        event[id_field] = draw(st.sampled_from((5, [], {}, True, 1.5)))
    elif mutation == "no_ids":
        event.pop("anonymousId", None)
        event.pop("userId", None)
    elif mutation == "blocked":
        event["userId"] = draw(st.sampled_from(BLOCKED))
    elif mutation == "blocked_device":
        event["previousId" if event.get("type") == "alias" and draw(BOOLS) else "anonymousId"] = draw(
            st.sampled_from(BLOCKED))
    elif mutation == "reserved":
        event["type"] = "track"
        event["event"] = draw(st.sampled_from(("Attimo Tag Changed", "attimo list changed", "ATTIMO anything")))
    elif mutation == "internal_type":
        event["type"] = draw(st.sampled_from(("attimo.tags", "attimo.list", "teleport", "Track", "")))
        event.setdefault("add", ["vip"])
    elif mutation == "time_extreme":
        event[draw(st.sampled_from(("timestamp", "originalTimestamp")))] = draw(st.sampled_from(EXTREME_TIMES))
        if draw(BOOLS):
            event["sentAt"] = draw(st.sampled_from(EXTREME_TIMES) | near(now))
    elif mutation == "time_far":
        event["timestamp"] = (now + timedelta(days=draw(st.sampled_from((-800, -400, -366, -2, 2, 30, 800))))
                              ).isoformat()
    elif mutation == "time_bad":
        event[draw(st.sampled_from(("timestamp", "sentAt", "originalTimestamp", "receivedAt")))] = draw(
            st.sampled_from(BAD_TIMES))
    elif mutation == "literal":
        _container(draw, event)[draw(st.sampled_from(("price", "x", "quantity")))] = RawJson(
            draw(st.sampled_from(sorted(LITERALS))))
    elif mutation == "truncate":
        return True
    elif mutation == "shape":
        name = draw(st.sampled_from(("properties", "traits", "context", "integrations", "name", "event")))
        event[name] = draw(st.sampled_from(("x", [], 5, None, "n" * 1025)))
    elif mutation == "long_key":
        box = event.setdefault("properties", {})
        if isinstance(box, dict):
            name = draw(st.sampled_from(sorted(KEY_PROPERTIES)))
            limit = KEY_PROPERTIES[name]
            box[name] = draw(st.sampled_from(("k" * limit, "k" * (limit + 1), "é" * (limit + 1), "k" * 30_000,
                                              {"id": 1}, ["p1"])))
    elif mutation == "missing":
        for name in ("event", "previousId", "groupId", "type"):
            if name in event and draw(BOOLS):
                del event[name]
    return False


def dumps(event: Any, ascii_only: bool = False) -> bytes:
    """The event as JSON text, with `RawJson` leaves written verbatim."""
    literals: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, RawJson):
            literals.append(value.text)
            return f"@@raw{len(literals) - 1}@@"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(event), ensure_ascii=ascii_only, allow_nan=False)
    for index, literal in enumerate(literals):
        text = text.replace(f'"@@raw{index}@@"', literal, 1)
    return text.encode("utf-8", "surrogatepass")


# ---- the model: what is wrong with a generated event -------------------------------------

def depth(value: Any) -> int:
    """Nesting levels of a JSON value, an object or array being one level."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def resolved(value: Any) -> tuple[Any, bool]:
    """The value as the decoder reads it, and whether a literal in it is refused by the decoder."""
    if isinstance(value, RawJson):
        decoded = LITERALS[value.text]
        return decoded, decoded is None
    if isinstance(value, dict):
        pairs = [(k, resolved(v)) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, any(bad for _, (_, bad) in pairs)
    if isinstance(value, list):
        items = [resolved(v) for v in value]
        return [v for v, _ in items], any(bad for _, bad in items)
    return value, False


def has_bigint(value: Any) -> bool:
    """Whether a JSON value holds an integer outside signed 64 bits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not INT_MIN <= value <= INT_MAX
    if isinstance(value, dict):
        return any(has_bigint(v) for v in value.values())
    if isinstance(value, list):
        return any(has_bigint(v) for v in value)
    return False


_datetime_decoder: Final = msgspec.json.Decoder(datetime | None)  # JSON null: no timestamp
FREE_FORM: Final = {"page": ("properties",), "screen": ("properties",), "track": ("properties",),
                    "identify": ("traits",), "group": ("traits",), "alias": ()}
TEXT_LIMITS: Final = {"name": 1024, "category": 1024}


def _moment(value: Any) -> datetime | str | None:
    """A timestamp as the decoder reads it; the string "bad" when it refuses it."""
    try:
        return _datetime_decoder.decode(json.dumps(value).encode())
    except msgspec.DecodeError:
        return "bad"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _number_faults(values: dict[str, Any]) -> bool:
    for name in NUMERIC_PROPERTIES:
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True
        if not 0 <= value <= (MAX_QUANTITY if name == "quantity" else MAX_AMOUNT):
            return True
    products = values.get("products")
    if products is None:
        return False
    if not isinstance(products, list):
        return True
    return any(not isinstance(p, dict) or _number_faults(p) for p in products)


def expected_faults(event: dict[str, Any], raw: bytes, batch_sent_at: datetime | None, now: datetime) -> set[str]:
    """What the Segment spec and Attimo's bounds say is wrong with `event` (empty: it must be accepted)."""
    faults: set[str] = set()
    if len(raw) > MAX_EVENT_BYTES:
        faults.add("size")
    if depth(event) > MAX_DEPTH:
        faults.add("depth")
    value, bad_literal = resolved(event)
    if bad_literal:
        faults.add("literal")
    kind = value.get("type")
    if kind not in EVENT_TYPES:
        faults.add("type")
        return faults
    fields = ("context", "integrations", *FREE_FORM[kind])
    if any(name in value and not isinstance(value[name], dict) for name in fields):
        faults.add("shape")
    if any(has_bigint(value.get(name)) for name in fields):
        faults.add("bigint")
    if kind in ("page", "screen") and any(
            (text := value.get(name)) is not None and (not isinstance(text, str) or len(text) > limit)
            for name, limit in TEXT_LIMITS.items()):
        faults.add("shape")
    _id_faults(value, kind, faults)
    if kind == "track":
        name = value.get("event")
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            faults.add("name")
        elif name.lower().startswith("attimo "):
            faults.add("reserved")
        props = value.get("properties")
        if isinstance(props, dict) and any(
                (key := props.get(field)) is not None and not isinstance(key, int | float)
                and (not isinstance(key, str) or len(key) > limit) for field, limit in KEY_PROPERTIES.items()):
            faults.add("key")
    # Amounts are bounded wherever an event carries them: properties (track, page, screen) and traits.
    if any(isinstance(value.get(name), dict) and _number_faults(value[name]) for name in FREE_FORM[kind]):
        faults.add("amount")
    if _time_fault(value, batch_sent_at, now):
        faults.add("time")
    return faults


def _id_faults(value: dict[str, Any], kind: str, faults: set[str]) -> None:
    required = {"alias": ["previousId"], "group": ["groupId"]}.get(kind, [])
    for name in ["messageId", "anonymousId", "userId", *required]:
        id_value = value.get(name)
        if id_value is None:
            if name in required:
                faults.add("id")
        elif not isinstance(id_value, str) or not 1 <= len(id_value) <= 200 or any(
                c in CONTROL_CHARS for c in id_value):
            faults.add("id")
    if not value.get("anonymousId") and not value.get("userId"):
        faults.add("no_id")
    # Blocked ids never identify anyone: they would merge strangers, or belong to no contact at all.
    user_id, anonymous_id = value.get("userId"), value.get("anonymousId")
    usable_user = isinstance(user_id, str) and not is_blocked_id(user_id)
    if kind == "alias" and isinstance(value.get("previousId"), str) and is_blocked_id(value["previousId"]):
        faults.add("blocked")
    if isinstance(anonymous_id, str) and is_blocked_id(anonymous_id):
        if not usable_user:
            faults.add("blocked")
        anonymous_id = None  # dropped: the event stays on its user
    if isinstance(user_id, str) and not usable_user and (kind in ("identify", "alias") or not anonymous_id):
        faults.add("blocked")


def _time_fault(value: dict[str, Any], batch_sent_at: datetime | None, now: datetime) -> bool:
    """Segment's skew correction: the event time must be representable and within the allowed window."""
    moments = {name: _moment(value[name]) for name in ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
               if name in value}
    if "bad" in moments.values():
        return True
    happened = moments.get("timestamp") or moments.get("originalTimestamp")
    sent = moments.get("sentAt") or batch_sent_at
    assert not isinstance(happened, str) and not isinstance(sent, str)
    if happened is None:
        return False
    try:
        at = now - (_utc(sent) - _utc(happened)) if sent is not None else _utc(happened)
    except OverflowError:
        return True
    return at - now > timedelta(hours=24) or now - at > timedelta(days=365)


# The reason each fault must be reported with (any fault present may be the one reported).
_AMOUNT_NAMES: Final = "|".join((*AMOUNT_PROPERTIES, "quantity"))
FAULT_REASONS: Final[dict[str, str]] = {
    "size": rf"event is \d+ bytes; at most {MAX_EVENT_BYTES} allowed",
    "depth": rf"nested \d+ levels deep; at most {MAX_DEPTH} allowed",
    "literal": r"not valid JSON|Number out of range - at `\$[^`]*`",
    "json": r"not valid JSON",
    "bigint": r"`[^`]+` is an integer beyond 64 bits",
    "type": r"at `\$\.type`|missing required field `type`",
    "shape": r"at `\$\.(properties|traits|context|integrations|name|category)`",
    "id": r"at `\$\.(messageId|anonymousId|userId|previousId|groupId)`"
          r"|`(messageId|anonymousId|userId|previousId|groupId)` contains a control character"
          r"|missing required field `(previousId|groupId)`",
    "no_id": r"either `anonymousId` or `userId` is required",
    "blocked": r"`(userId|anonymousId|previousId)` .* is not a usable id",
    "name": r"at `\$\.event`|missing required field `event`",
    "reserved": r"`event` .*: names starting with 'Attimo ' are reserved",
    "key": r"`properties\.(product_id|sku|category|name)` (must be a string or a number|is \d+ characters; "
           r"at most \d+ allowed)",
    "amount": rf"`(properties|traits)(\.products\[\d+\])?\.({_AMOUNT_NAMES})` (must be a number|is out of range)"
              r"|`(properties|traits)\.products(\[\d+\])?` must be (a list|an object)",
    "time": r"at `\$\.(timestamp|originalTimestamp|sentAt|receivedAt)`|`timestamp` or `sentAt` is outside"
            r"|`timestamp` \S+ is (in the future|older than the allowed age)",
}
PRECISE: Final = re.compile(r"`[^`]+`|at most \d+|not valid JSON")
"""Every reason names the field (in backticks) or the limit, or says the JSON is broken."""


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """A few anonymous ids and user ids, disjoint (no device id is also a user id, in any case)."""
    anonymous = draw(st.lists(CLEAN_IDS, min_size=1, max_size=4, unique=True))
    taken = {a.lower() for a in anonymous}
    users = draw(st.lists(CLEAN_IDS.filter(lambda u: u.lower() not in taken), min_size=1, max_size=3, unique=True))
    return anonymous, users

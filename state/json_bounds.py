"""Bounds on the free-form JSON inside events, and reading JSON without recursion.

Events carry free-form objects (`properties`, `traits`, `context`) that are
stored, snapshotted (msgpack), rendered (JSON) and read back by other
processes and languages. Each of those steps has its own limits: msgpack and
orjson stop at 64-bit integers, decoders recurse once per nesting level. So
ingest accepts only what every later step can take: at most `MAX_DEPTH`
levels of nesting and integers within signed 64 bits. An event outside those
bounds is refused with its reason at the edge, never stored.

Checking costs almost nothing for ordinary events: a nesting depth is only
measured when the raw bytes hold more brackets than `MAX_DEPTH`, and
integers only walked when the bytes hold a run of 19 digits (every integer
of 18 digits or fewer fits).

A body nested deeper than the decoder's recursion limit cannot be decoded
at all, so it cannot be split into events by the decoder either. The
scanner below splits the top level of a JSON object or array into raw
members with a regular expression and a depth counter — no recursion — so
that the good events of such a frame are kept and the deep one is refused
on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

MAX_DEPTH: Final = 32
"""Nesting levels an event may have, the event object itself being level 1."""
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1

_OPENERS: Final = (ord("["), ord("{"))
# Strings (possessive: no backtracking), runs of openers, runs of closers, separators.
_TOKENS: Final = re.compile(rb'"(?:[^"\\]|\\.)*+"|[\[{]+|[\]}]+|[,:]')
_LONG_DIGITS: Final = re.compile(rb"\d{19}")


class BoundsError(ValueError):
    """A value outside what every later step can store and read back."""


def may_be_too_deep(raw: bytes) -> bool:
    """Whether `raw` holds enough brackets to nest deeper than MAX_DEPTH (cheap pre-check)."""
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH


def may_hold_big_ints(raw: bytes) -> bool:
    """Whether `raw` holds a digit run long enough for an integer beyond 64 bits (cheap pre-check)."""
    return _LONG_DIGITS.search(raw) is not None


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw` (strings skipped), without recursion."""
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        first = token[0]
        if first in _OPENERS:
            depth += len(token)
            deepest = max(deepest, depth)
        elif first in (ord("]"), ord("}")):
            depth -= len(token)
    return deepest


def check_integers(value: object, where: str) -> None:
    """Raise BoundsError naming the first integer outside signed 64 bits (`value` is already bounded in depth)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise BoundsError(f"`{where}` is an integer beyond 64 bits")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_integers(item, f"{where}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for index, item in enumerate(value):
            check_integers(item, f"{where}[{index}]")


def check_raw_event(raw: bytes) -> None:
    """Refuse an event's raw JSON nested deeper than MAX_DEPTH, before decoding it."""
    if may_be_too_deep(raw) and (depth := nesting_depth(raw)) > MAX_DEPTH:
        raise BoundsError(f"nested {depth} levels deep; at most {MAX_DEPTH} allowed")


def object_members(body: bytes) -> dict[str, bytes] | None:
    """The members of a top-level JSON object as raw values, or None when `body` is not one.

    Values are returned undecoded (a nested value may be arbitrarily deep);
    a malformed body may give malformed values, which their own decoding
    then refuses.
    """
    members: dict[str, bytes] = {}
    depth = 0
    key: bytes | None = None
    value_start: int | None = None
    for match in _TOKENS.finditer(body):
        token = match.group()
        first = token[0]
        if first == ord('"'):
            if depth == 1 and key is None and value_start is None:
                key = token
        elif first == ord(":"):
            if depth == 1 and key is not None and value_start is None:
                value_start = match.end()
        elif first == ord(","):
            if depth == 1 and key is not None and value_start is not None:
                _add_member(members, key, body[value_start:match.start()])
                key = value_start = None
        elif first in _OPENERS:
            if depth == 0 and (first != ord("{") or body[:match.start()].strip()):
                return None
            depth += len(token)
        else:
            if depth - len(token) <= 0:  # this run closes the object
                if key is not None and value_start is not None:
                    _add_member(members, key, body[value_start:match.start() + depth - 1])
                return members
            depth -= len(token)
    return None


def _add_member(members: dict[str, bytes], key: bytes, value: bytes) -> None:
    try:
        name = msgspec.json.decode(key, type=str)
    except msgspec.DecodeError:
        return
    members.setdefault(name, value.strip())


def array_elements(body: bytes) -> list[bytes] | None:
    """The elements of a top-level JSON array as raw values, or None when `body` is not one."""
    elements: list[bytes] = []
    depth = 0
    start: int | None = None
    for match in _TOKENS.finditer(body):
        token = match.group()
        first = token[0]
        if first == ord(","):
            if depth == 1 and start is not None:
                elements.append(body[start:match.start()].strip())
                start = match.end()
        elif first in _OPENERS:
            if depth == 0:
                if first != ord("[") or body[:match.start()].strip():
                    return None
                start = match.start() + 1
            depth += len(token)
        elif first in (ord("]"), ord("}")):
            if depth - len(token) <= 0:
                if start is not None:
                    last = body[start:match.start() + depth - 1].strip()
                    if last or elements:
                        elements.append(last)
                return elements
            depth -= len(token)
    return None

"""Traits: the custom fields `identify` sets on a contact, within bounds.

Each identify may carry up to an event's size in traits, and a client can
send any number of identifies; stored as they come, one contact could grow
without end. So a contact keeps at most `MAX_TRAITS` traits (updating one it
has is always possible; new names beyond the cap are ignored) and no single
value larger than `MAX_TRAIT_BYTES` once encoded (such a value is ignored
too, and an earlier value of that trait stays).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

MAX_TRAITS: Final = 200
MAX_TRAIT_BYTES: Final = 4096
_encoder: Final = msgspec.json.Encoder()


def _small(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_TRAIT_BYTES // 4 or len(value.encode()) <= MAX_TRAIT_BYTES
    return len(_encoder.encode(value)) <= MAX_TRAIT_BYTES


def set_traits(traits: dict[str, object], new: Mapping[str, object]) -> None:
    """Update `traits` with `new`, within the bounds above."""
    for name, value in new.items():
        if (name in traits or len(traits) < MAX_TRAITS) and _small(value):
            traits[name] = value


def merge_traits(into: dict[str, object], other: Mapping[str, object]) -> dict[str, object]:
    """`into`'s traits, completed by `other`'s where `into` has none (identity merge), within bounds."""
    merged = dict(into)
    for name, value in other.items():
        if name not in merged and len(merged) < MAX_TRAITS:
            merged[name] = value
    return merged

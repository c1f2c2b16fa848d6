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
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from state.events import BROWSER, Event, Identify

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

MAX_TRAITS: Final = 200
MAX_TRAIT_BYTES: Final = 4096
_encoder: Final = msgspec.json.Encoder()


class Traits(msgspec.Struct, array_like=True):
    """The contact's traits by name."""

    values: dict[str, Any] = msgspec.field(default_factory=dict)


def _small(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_TRAIT_BYTES // 4 or len(value.encode()) <= MAX_TRAIT_BYTES
    return len(_encoder.encode(value)) <= MAX_TRAIT_BYTES


def set_traits(traits: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Update `traits` with `new`, within the bounds above."""
    for name, value in new.items():
        if (name in traits or len(traits) < MAX_TRAITS) and _small(value):
            traits[name] = value


def merge_traits(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Complete `into` with `other`'s traits where `into` has none (identity merge), within bounds."""
    for name, value in other.items():
        if name not in into and len(into) < MAX_TRAITS:
            into[name] = value


class TraitsCapability(Capability[Traits]):
    """Traits from identify; the profile's `traits` and `email`."""

    name = "traits"
    part = Traits

    def apply(self, part: Traits, event: Event, ctx: Context) -> None:
        if isinstance(event, Identify):
            # An unverified browser only fills a known contact's gaps, never overwrites a trait
            # (an anonymous visitor's own identifies arrive unmarked: `shard.identity.on_visitor`).
            if event.trust == BROWSER:
                merge_traits(part.values, event.traits)
            else:
                set_traits(part.values, event.traits)

    def merge(self, into: Traits, other: Traits, ctx: Context) -> None:
        merge_traits(into.values, other.values)

    def render(self, part: Traits, view: StateView) -> Mapping[str, Any]:
        email = part.values.get("email")
        return {"traits": dict(part.values), "email": email if isinstance(email, str) else None}

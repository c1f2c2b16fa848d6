"""Tags and lists: set by tag rules, by the admin API, and read by segments.

The admin API cannot write dataflow state directly (it would race the
dataflow and vanish at the next profile write), so it appends internal
events to the contact's stream — `TagsChanged` and `ListChanged`, types no
client can send — and they are applied here in stream order like any event.
A contact carries at most `MAX_TAGS` tags and as many lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from dataflows.capabilities.base import Capability, Context
from dataflows.rules.matching import matches
from state.config import ActiveConfig
from state.events import Event, InternalEvent, ListChanged, TagsChanged

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

MAX_TAGS: Final = 100


class TagState(msgspec.Struct, array_like=True, gc=False):
    """The contact's tags and the lists it is an explicit member of."""

    tags: list[str] = msgspec.field(default_factory=list)
    lists: list[str] = msgspec.field(default_factory=list)


def add_value(values: list[str], value: str) -> None:
    """Add a tag or list, unless present or the contact has `MAX_TAGS` already."""
    if value not in values and len(values) < MAX_TAGS:
        values.append(value)


def remove_value(values: list[str], value: str) -> None:
    """Remove a tag or list if present."""
    if value in values:
        values.remove(value)


def apply_admin_change(part: TagState, event: InternalEvent) -> None:
    """Apply an admin tag or list change."""
    if isinstance(event, TagsChanged):
        for tag in event.add:
            add_value(part.tags, tag)
        for tag in event.remove:
            remove_value(part.tags, tag)
    elif isinstance(event, ListChanged):
        (add_value if event.member else remove_value)(part.lists, event.list_id)


def apply_tag_rules(part: TagState, event: Event, config: ActiveConfig) -> None:
    """Add or remove the tags of every tag rule the event matches."""
    for rule in config.tag_rules:
        if matches(rule.match, event):
            (remove_value if rule.remove else add_value)(part.tags, rule.tag)


class TagsCapability(Capability[TagState]):
    """Tags (by rule or by hand) and lists (by hand); the profile's `tags` and `lists`."""

    name = "tags"
    part = TagState

    def apply(self, part: TagState, event: Event, ctx: Context) -> None:
        apply_tag_rules(part, event, ctx.live.config)

    def admin(self, part: TagState, event: InternalEvent, ctx: Context) -> None:
        apply_admin_change(part, event)

    def merge(self, into: TagState, other: TagState, ctx: Context) -> None:
        for tag in other.tags:
            add_value(into.tags, tag)
        for list_id in other.lists:
            add_value(into.lists, list_id)

    def render(self, part: TagState, view: StateView) -> Mapping[str, Any]:
        return {"tags": list(part.tags), "lists": list(part.lists)}

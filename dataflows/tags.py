"""Tags and lists: set by tag rules, by the admin API, and read by segments.

The admin API cannot write dataflow state directly (it would race the
dataflow and vanish at the next profile write), so it appends internal
events to the contact's stream — `TagsChanged` and `ListChanged`, types no
client can send — and they are applied here in stream order like any event.
"""

from __future__ import annotations

from typing import Final

from dataflows.contact_state import ContactState
from dataflows.matching import matches
from state.config import ActiveConfig
from state.events import Event, InternalEvent, TagsChanged

MAX_TAGS: Final = 100


def _add(values: list[str], value: str) -> bool:
    if value in values or len(values) >= MAX_TAGS:
        return False
    values.append(value)
    return True


def _remove(values: list[str], value: str) -> bool:
    if value not in values:
        return False
    values.remove(value)
    return True


def apply_admin_change(state: ContactState, event: InternalEvent) -> bool:
    """Apply an admin tag or list change; True when tags or lists changed."""
    changed = False
    if isinstance(event, TagsChanged):
        for tag in event.add:
            changed |= _add(state.tags, tag)
        for tag in event.remove:
            changed |= _remove(state.tags, tag)
        return changed
    return _add(state.lists, event.list_id) if event.member else _remove(state.lists, event.list_id)


def apply_tag_rules(state: ContactState, event: Event, config: ActiveConfig) -> bool:
    """Add or remove the tags of every tag rule the event matches; True when tags changed."""
    changed = False
    for rule in config.tag_rules:
        if matches(rule.match, event):
            changed |= _remove(state.tags, rule.tag) if rule.remove else _add(state.tags, rule.tag)
    return changed


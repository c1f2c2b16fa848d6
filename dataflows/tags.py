"""Tags and lists: set by tag rules, by the admin API, and read by segments.

The admin API cannot write dataflow state directly (it would race the
dataflow and vanish at the next profile write), so it appends internal
events to the contact's stream — `Attimo Tag Changed` and `Attimo List
Changed` — and they are applied here in stream order like any event.
"""

from __future__ import annotations

from typing import Final

from dataflows.contact_state import ContactState
from dataflows.matching import matches
from state.config import ActiveConfig
from state.events import LIST_CHANGED, TAG_CHANGED, Event, Track

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


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def apply_tags(state: ContactState, event: Event, config: ActiveConfig) -> bool:
    """Apply admin tag/list changes and tag rules; True when tags or lists changed."""
    changed = False
    if isinstance(event, Track):
        props = event.properties
        if event.event == TAG_CHANGED:
            for tag in _strings(props.get("add")):
                changed |= _add(state.tags, tag)
            for tag in _strings(props.get("remove")):
                changed |= _remove(state.tags, tag)
            return changed
        if event.event == LIST_CHANGED:
            list_id = props.get("list")
            if isinstance(list_id, str) and list_id:
                adding = props.get("add", True)
                changed = _add(state.lists, list_id) if adding else _remove(state.lists, list_id)
            return changed
    for rule in config.tag_rules:
        if matches(rule.match, event):
            changed |= _remove(state.tags, rule.tag) if rule.remove else _add(state.tags, rule.tag)
    return changed


def is_internal(event: Event) -> bool:
    """Internal admin events change tags and lists only; they are not activity."""
    return isinstance(event, Track) and event.event in (TAG_CHANGED, LIST_CHANGED)

"""What a changed contact tells the world: segment changes, profile, decision document and push.

Runs once per changed contact per activation, after all of its events (and
once per due timer), so its cost is paid per change, not per event. Every
registered capability evaluates its part (emitting outputs such as segment
changes, or — the `decision` capability — the decision document and its
push), names its next deadline and renders its fields of the profile; the
contact's own deadline is the earliest of them. The caller commits the
contact afterwards and arms its timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from dataflows.capabilities.base import Context
from dataflows.capabilities.view import StateView
from dataflows.io.outputs import Output, ProfileWrite
from dataflows.shard.contact import ContactCore, Registry
from state.profile import Profile, encode_profile

_PROFILE_FIELDS: Final = frozenset(Profile.__struct_fields__)


def _moment(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, UTC) if epoch_s else None


def emit_contact(state: ContactCore, registry: Registry, ctx: Context, now: float,
                 anonymous: bool) -> list[Output]:
    """Evaluate the contact at `now`; its outputs, profile write and decision push."""
    state.updated_at = now
    view = StateView(state, ctx.live, now, ctx.settings)
    out: list[Output] = []
    for name, evaluate in registry.evaluators:
        out.extend(evaluate(getattr(state, name), view))
    deadlines = [due(getattr(state, name), view) for name, due in registry.schedulers]
    if anonymous:
        deadlines.append(state.last_seen + ctx.live.config.identity.anonymous_ttl_s)
    state.due_at = min((d for d in deadlines if d is not None), default=None)
    fields: dict[str, Any] = {}
    for name, render in registry.renderers:
        fields.update(render(getattr(state, name), view))
    profile = render_profile(state, fields, ctx.live.version)
    out.append(ProfileWrite(state.contact_id, encode_profile(profile)))
    return out


def render_profile(state: ContactCore, fields: dict[str, Any], config_version: int) -> Profile:
    """The profile: core fields, then each capability's; fields the schema lacks go to `extensions`."""
    unknown = fields.keys() - _PROFILE_FIELDS
    extensions = {name: fields.pop(name) for name in unknown} if unknown else {}
    return Profile(contact_id=state.contact_id, anonymous_ids=list(state.anonymous_ids), user_id=state.user_id,
                   first_seen=_moment(state.first_seen), last_seen=_moment(state.last_seen),
                   updated_at=_moment(state.updated_at), config_version=config_version,
                   extensions=extensions, **fields)


def retire(state: ContactCore, registry: Registry, at: float) -> Sequence[Output]:
    """What every capability owes when the contact ceases to exist (merged, purged): segment exits …"""
    out: list[Output] = []
    for name, retire_part in registry.retirers:
        out.extend(retire_part(getattr(state, name), state.contact_id, at))
    return out

"""What the per-contact operator emits, for the sink to write.

The sink takes a small closed set of output kinds; each later capability
(segment changes, triggers, decisions) adds one kind here and one branch in
the sink, rather than a sink of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """Overwrite a contact's profile: idempotent, so replays are harmless."""

    contact_id: str
    profile_json: bytes


@dataclass(frozen=True, slots=True)
class AliasWrite:
    """Point another id (anonymous id, e-mail) at the contact that owns it."""

    alias: str
    contact_id: str


@dataclass(frozen=True, slots=True)
class DecisionPush:
    """Tell gateways that a visitor's decisions changed, for a live push."""

    ids: tuple[str, ...]
    decision_json: bytes


Output = ProfileWrite | AliasWrite | DecisionPush

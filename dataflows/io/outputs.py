"""What the stateful operators emit: for the sink to write, or for the next stage.

The sink takes a small closed set of output kinds; each capability adds one
kind here and one branch in the sink, rather than a sink of its own. Every
kind is written idempotently (overwrites, set operations, ids derived from
the state), so the replay after a crash changes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflows.recommendations.signals import LearnedWrite as LearnedWrite
from dataflows.recommendations.signals import ProductActivity as ProductActivity
from dataflows.recommendations.signals import RecsWrite as RecsWrite
from state.actions import Action
from state.erasure import EraseAnswer, EraseControl
from state.events import StreamEvent
from state.heartbeat import HeartbeatArrival
from state.quarantine import QuarantineRecord
from state.segment_changes import SegmentChange as SegmentChange
from state.segment_preview import PreviewAnswer, PreviewControl


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """Overwrite a contact's profile: idempotent, so replays are harmless."""

    contact_id: str
    profile_json: bytes


@dataclass(frozen=True, slots=True)
class ProfileDelete:
    """Remove a contact's profile (merged into another contact, or purged)."""

    contact_id: str


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


@dataclass(frozen=True, slots=True)
class DecisionDocWrite:
    """Overwrite a contact's decision document under each of `ids` (`keys.decision_doc`): idempotent.

    `ttl_s` marks an anonymous visitor's document: it expires about when the
    visitor is purged and never replaces a known contact's
    (`state.decision_store`); a known contact's never expires.
    """

    ids: tuple[str, ...]
    doc_json: bytes
    ttl_s: float | None = None


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A contact shard has re-evaluated its `contacts` under config `version`."""

    version: int
    shard: str
    contacts: int


@dataclass(frozen=True, slots=True)
class MetricAdd:
    """Add to a dataflow counter (late events, merges, purges); approximate under replay."""

    name: str
    amount: int


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Something a step could not take (the contact was rolled back): keep it for operators."""

    record: QuarantineRecord


@dataclass(frozen=True, slots=True)
class ActionOut:
    """An action a workflow decided: appended to the outbox once per id (replays decide the same ids)."""

    action: Action


@dataclass(frozen=True, slots=True)
class Tally:
    """Count something exactly (workflow stats): the shard keeps the sum in its snapshot.

    A capability emits increments; the contact shard adds them to its own
    totals only when the contact commits, and writes the totals (absolute
    values, so a replay rewrites the same numbers) as `TallyWrite`s.
    """

    key: str
    field: str
    amount: int = 1


@dataclass(frozen=True, slots=True)
class TallyWrite:
    """A shard's total for one counter: `HSET key <shard label>:<field> value`."""

    key: str
    field: str
    value: int


@dataclass(frozen=True, slots=True)
class HeartbeatSeen:
    """The visitor stage took a heartbeat (`state.heartbeat`): the sink records its arrival."""

    arrival: HeartbeatArrival


@dataclass(frozen=True, slots=True)
class ContactsSeen:
    """These visitors / contacts had events processed at `at` (the dashboard's active visitors)."""

    ids: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class PreviewCount:
    """A contact shard's answer to a segment count preview: `HSET keys.segment_preview(id) field answer`."""

    preview_id: str
    field: str
    answer: PreviewAnswer


@dataclass(frozen=True, slots=True)
class ShardPreview:
    """A segment count preview addressed to one contact shard (visitor stage, then contact stage)."""

    control: PreviewControl
    shard: str


@dataclass(frozen=True, slots=True)
class AliasDelete:
    """Visitor → user links purged (unused for the anonymous TTL): their alias keys go."""

    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContactErased:
    """A contact shard forgot these ids (a contact, its devices, its links): the sink deletes their traces."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BlockedEvents:
    """Events of erased ids were dropped: the sink drops their stream entries (appended since `since_ms`)."""

    ids: tuple[str, ...]
    since_ms: int


@dataclass(frozen=True, slots=True)
class EraseDone:
    """A contact shard's answer to an erase: `HSET keys.erasure(id) field answer`."""

    erase_id: str
    field: str
    answer: EraseAnswer


@dataclass(frozen=True, slots=True)
class ShardErase:
    """An erase control addressed to one contact shard (visitor stage, then contact stage)."""

    control: EraseControl
    shard: str


Output = (AliasDelete | BlockedEvents | ContactErased | EraseDone
          | PreviewCount | ProfileWrite | ProfileDelete | AliasWrite | DecisionPush | SegmentChange | BackfillProgress
          | MetricAdd | Quarantined | ActionOut | Tally | TallyWrite | DecisionDocWrite
          | ProductActivity | RecsWrite | LearnedWrite | HeartbeatSeen | ContactsSeen)


@dataclass(frozen=True, slots=True)
class Routed:
    """An event on its way to the known contact it was resolved to."""

    contact_id: str
    event: StreamEvent
    # The config version it was resolved under: the contact stage switches first if behind.
    version: int


@dataclass(frozen=True, slots=True)
class Handoff:
    """An anonymous visitor's state, moving to the contact it was identified as."""

    contact_id: str
    anonymous_id: str
    state_msgpack: bytes | None
    version: int


@dataclass(frozen=True, slots=True)
class ShardControl:
    """Configuration `version` is in force; addressed to one contact shard."""

    version: int
    shard: str

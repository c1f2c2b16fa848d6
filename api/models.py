"""The API's response bodies, one msgspec Struct each: encoded by the routes, documented in `/docs`.

Shared-layer types (`Profile`, `Decisions`, `SegmentDef`, `QuarantineRecord`
…) are used as they are; what only the API says is defined here. Every
error, whatever the route, is an `ErrorBody`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from api.dispatcher.records import DeadLetter
from state.config import SegmentDef
from state.events import Event
from state.frames import RejectedEvent
from state.quarantine import QuarantineRecord


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error of every route: what went wrong, in words naming the field or the limit."""

    error: str
    success: Literal[False] = False


class IngestOk(msgspec.Struct, frozen=True):
    """Every event of the request was stored."""

    success: Literal[True] = True


class IngestPartial(msgspec.Struct, frozen=True):
    """Some events were refused (400): `accepted` were stored, `rejected` never will be."""

    accepted: int
    rejected: list[RejectedEvent]
    success: Literal[False] = False


class BatchBody(msgspec.Struct, frozen=True, rename="camel"):
    """Segment's `POST /v1/batch` body (each event is validated on its own; see `docs/protocol.md`)."""

    batch: list[Event]
    sent_at: datetime | None = None
    write_key: str | None = None


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    """Liveness: Redis reachable, and how far behind the dataflow is."""

    status: Literal["ok", "unavailable"]
    redis: bool
    ingest_lag_s: float | None = None
    error: str | None = None


class Published(msgspec.Struct, frozen=True):
    """A configuration change was published as version `version`."""

    version: int


class SegmentPublished(msgspec.Struct, frozen=True):
    """A segment was created (`created`) or replaced, as `version`."""

    version: int
    segment: SegmentDef
    created: bool


class SegmentDeleted(msgspec.Struct, frozen=True):
    """A segment was deleted, as `version`."""

    version: int
    deleted: str


class SegmentsPage(msgspec.Struct, frozen=True):
    """Every segment definition."""

    data: list[SegmentDef]
    count: int


class Member(msgspec.Struct, frozen=True):
    """A segment member and when it entered (epoch seconds)."""

    contact_id: str
    entered_at: float


class MembersPage(msgspec.Struct, frozen=True):
    """A page of members, oldest entry first; pass `next_cursor` back as `cursor`."""

    data: list[Member]
    count: int
    next_cursor: str | None


class ContactSegments(msgspec.Struct, frozen=True):
    """The segments of one contact."""

    contact_id: str
    data: list[str]
    count: int


class BackfillStatus(msgspec.Struct, frozen=True):
    """How far re-evaluating every contact under a configuration version has got."""

    version: int
    shards_done: int
    shards_total: int
    contacts: int
    done: bool


class Accepted(msgspec.Struct, frozen=True):
    """Internal events appended (202): applied by the dataflow within a second."""

    accepted: int


class QuarantinePage(msgspec.Struct, frozen=True):
    """Quarantined items, newest first; pass `next_before` back as `before`."""

    data: list[QuarantineRecord]
    count: int
    next_before: float | None


class Replayed(msgspec.Struct, frozen=True):
    """The quarantined event was appended again (202)."""

    replayed: int


class Stats(msgspec.Struct, frozen=True):
    """The dataflow's counters, the quarantine's size and the ingest lag."""

    counters: dict[str, int]
    quarantined: int
    ingest_lag_s: float


# ---- webhooks and delivery (`/v1/admin/webhooks`) --------------------------------


class EndpointPublic(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook endpoint as operators see it (never its secrets).

    `secrets` counts the secrets signing now (2 while a rotation's grace
    period runs, until `rotation_ends_at`). `disabled_*` say whether and why
    dispatchers stopped sending to it; `failing_since` is the first failure
    after its last success.
    """

    id: str
    url: str
    description: str
    created_at: float
    updated_at: float
    secrets: int
    rotation_ends_at: float | None
    disabled: bool
    disabled_at: float | None
    disabled_reason: str | None
    failing_since: float | None


class EndpointSaved(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint created (201) or replaced (200); `secret` is the generated secret, shown this once."""

    endpoint: EndpointPublic
    created: bool
    secret: str | None


class EndpointsPage(msgspec.Struct, frozen=True):
    """Every webhook endpoint, by id."""

    data: list[EndpointPublic]
    count: int


class SecretRotated(msgspec.Struct, frozen=True, kw_only=True):
    """The new signing secret, shown this once; the old ones sign too until `endpoint.rotation_ends_at`."""

    endpoint: EndpointPublic
    secret: str


class DeadLettersPage(msgspec.Struct, frozen=True):
    """Dead letters, newest first; pass `next_before` back as `before`."""

    data: list[DeadLetter]
    count: int
    next_before: float | None


class DeliveryCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Delivery counters of one target (`webhook:<endpoint>` or `email`) since the start.

    `retrying` is how many actions have failed at least once and are still
    being tried; `dead` counts actions given up (a replayed one that is then
    delivered counts in `delivered` too).
    """

    target: str
    endpoint: str | None
    delivered: int
    retrying: int
    dead: int
    attempts: int
    failed_attempts: int


class DeliveryStats(msgspec.Struct, frozen=True):
    """Counters per target, and how many dead letters are kept."""

    data: list[DeliveryCounts]
    dead_letters: int

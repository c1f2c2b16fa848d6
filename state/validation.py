"""Decode and validate incoming events one by one, keeping the good ones.

A batch from a browser or a server is never all-or-nothing: each event is
decoded on its own (from its raw bytes, so its size is known), and a bad one
is reported with its index, its messageId and the field at fault while the
rest of the batch is kept. Timestamps are corrected for clock skew the way
Segment does: `timestamp = receivedAt - (sentAt - timestamp)`.

Whatever is accepted here must survive every later step — the stream
entry, the dataflow's state and msgpack snapshots, the profile's JSON, the
API's read — so the bounds of all of them are enforced here, at the edge:
nesting depth and 64-bit integers (`state.json_bounds`), finite,
non-negative amounts within a ceiling, ids without control characters,
timestamps whose skew correction stays within the calendar, no reserved
(internal) event names, and short keys (product ids, categories) for the
state the dataflow keeps per contact. Blocked ids (`null`, `0` …) never
identify anyone: an event needs a usable id, and a blocked anonymousId is
dropped (the event stays on its user) rather than linked.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

import msgspec

from state.errors import BatchTooLargeError, InvalidBatchError, InvalidEventError
from state.events import RESERVED_EVENT_PREFIX, Alias, Event, Group, Identify, Page, Screen, Track
from state.ip_privacy import scrub_context
from state.json_bounds import (
    MAX_DEPTH,
    BoundsError,
    array_elements,
    check_integers,
    check_raw_event,
    may_hold_big_ints,
    object_members,
)

# Amounts an event may carry: far beyond any real shop, but finite and not
# negative, so a typo or an attack cannot poison a score, a sum or an AOV.
MAX_AMOUNT: Final = 1e12
MAX_QUANTITY: Final = 1e6
AMOUNT_PROPERTIES: Final = ("price", "revenue", "total", "value", "discount", "shipping", "tax", "subtotal")
NUMERIC_PROPERTIES: Final = (*AMOUNT_PROPERTIES, "quantity")
# Track properties the dataflow keeps state under (cart lines, window counts, views per category): a
# short text or a number each, so that a contact's state grows with what it does, not with string size
# (30 KB product ids made a 22 MB profile in 300 events). `name` is the cart key when there is no id.
KEY_PROPERTIES: Final = {"product_id": 200, "sku": 200, "category": 200, "name": 1024}
BLOCKED_IDS: Final = frozenset({"null", "undefined", "anonymous", "0", "-1", "nil", "none"})
# The largest integer JavaScript represents exactly: a tracker's frame counter never gets near it.
MAX_SEQ: Final = 2**53 - 1
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Limits:
    """What an event may look like; every value comes from settings."""

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 512 * 1024
    max_events_per_batch: int = 100
    max_future_skew: timedelta = timedelta(hours=24)
    max_event_age: timedelta = timedelta(days=365)
    # Privacy at ingest (`state.ip_privacy`).
    anonymize_ip: bool = False
    keep_user_agent: bool = True


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected event: its position in the batch and the reason."""

    index: int
    error: str


@dataclass(slots=True)
class DecodedBatch:
    """The accepted events of a batch, normalised, and the rejected ones."""

    accepted: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]


class Frame(msgspec.Struct, rename="camel"):
    """A tracker websocket frame: a numbered batch awaiting an ack."""

    seq: Seq
    batch: list[msgspec.Raw]
    sent_at: datetime | None = None


class HttpBatch(msgspec.Struct, rename="camel"):
    """Body of Segment's `POST /v1/batch`."""

    batch: list[msgspec.Raw]
    sent_at: datetime | None = None
    write_key: str | None = None


_event_decoder: Final = msgspec.json.Decoder(Event)
_frame_decoder: Final = msgspec.json.Decoder(Frame)
_http_batch_decoder: Final = msgspec.json.Decoder(HttpBatch)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_numbers(where: str, values: Mapping[str, Any]) -> None:
    for name in NUMERIC_PROPERTIES:
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"`{where}.{name}` must be a number, got {type(value).__name__}")
        ceiling = MAX_QUANTITY if name == "quantity" else MAX_AMOUNT
        if not math.isfinite(value) or not 0 <= value <= ceiling:
            raise ValueError(f"`{where}.{name}` is out of range (0 ≤ x ≤ {ceiling:g}), got {value!r}")
    products = values.get("products")
    if products is not None:
        if not isinstance(products, list):
            raise ValueError(f"`{where}.products` must be a list")
        for i, product in enumerate(products):
            if not isinstance(product, dict):
                raise ValueError(f"`{where}.products[{i}]` must be an object")
            _check_numbers(f"{where}.products[{i}]", product)


def _check_keys(where: str, values: Mapping[str, Any]) -> None:
    for name, limit in KEY_PROPERTIES.items():
        value = values.get(name)
        if value is None or isinstance(value, int | float):
            continue
        if not isinstance(value, str):
            raise ValueError(f"`{where}.{name}` must be a string or a number, got {type(value).__name__}")
        if len(value) > limit:
            raise ValueError(f"`{where}.{name}` is {len(value)} characters; at most {limit} allowed")


def _check_ids(event: Event) -> None:
    ids = [("messageId", event.message_id), ("anonymousId", event.anonymous_id), ("userId", event.user_id)]
    if isinstance(event, Alias):
        ids.append(("previousId", event.previous_id))
    elif isinstance(event, Group):
        ids.append(("groupId", event.group_id))
    for name, value in ids:
        if value is not None and _CONTROL_CHARS.search(value):
            raise ValueError(f"`{name}` contains a control character")


def _decode_salvaging(body: bytes, kind: type[msgspec.Struct], what: str) -> Any:
    """Decode an envelope nested too deep for the decoder: its members one by one.

    The batch is split without recursion (`state.json_bounds`), so the
    deep event is refused on its own by `validate_one` and the rest kept.
    """
    members = object_members(body)
    if members is None:
        raise InvalidBatchError(f"{what}: not a JSON object (or nested too deeply to read)")
    fields: dict[str, Any] = {}
    for name, raw in members.items():
        if name == "batch":
            elements = array_elements(raw)
            if elements is None:
                raise InvalidBatchError(f"{what}: `batch` must be an array")
            fields[name] = [msgspec.Raw(element) for element in elements]
        elif name in ("seq", "sentAt", "writeKey"):
            try:
                fields[name] = msgspec.json.decode(raw)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise InvalidBatchError(f"{what}: `{name}`: {exc}") from exc
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise InvalidBatchError(f"{what}: {exc}") from exc


def is_blocked_id(value: str | None) -> bool:
    """Ids that many clients send by mistake and that must never identify anyone."""
    if value is None:
        return False
    stripped = value.strip().lower()
    return not stripped or stripped in BLOCKED_IDS or set(stripped) <= {"0", "-"}


class EventValidator:
    """Turns raw JSON events into normalised, trusted `Event`s."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def decode_frame(self, body: bytes, received_at: datetime) -> tuple[int, DecodedBatch]:
        """Decode a tracker frame; returns its seq and the per-event outcome."""
        try:
            frame = _frame_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidBatchError(f"frame: {exc}") from exc
        except RecursionError:
            frame = _decode_salvaging(body, Frame, "frame")
        return frame.seq, self.validate_all(frame.batch, received_at, frame.sent_at)

    def decode_http_batch(self, body: bytes, received_at: datetime) -> tuple[HttpBatch, DecodedBatch]:
        """Decode Segment's batch body; the write key may be inside it."""
        try:
            envelope = _http_batch_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidBatchError(f"body: {exc}") from exc
        except RecursionError:
            envelope = _decode_salvaging(body, HttpBatch, "body")
        return envelope, self.validate_all(envelope.batch, received_at, envelope.sent_at)

    def validate_all(
        self, raw_events: Iterable[msgspec.Raw | bytes], received_at: datetime,
        batch_sent_at: datetime | None = None,
    ) -> DecodedBatch:
        """Validate each event on its own; bad ones are listed, good ones kept."""
        raws = list(raw_events)
        if len(raws) > self.limits.max_events_per_batch:
            raise BatchTooLargeError(
                f"batch has {len(raws)} events; at most {self.limits.max_events_per_batch} allowed")
        out = DecodedBatch()
        for index, raw in enumerate(raws):
            try:
                out.accepted.append(self.validate_one(bytes(raw), received_at, batch_sent_at, index))
            except InvalidEventError as exc:
                out.rejected.append(Rejection(index, exc.reason))
        return out

    def validate_one(self, raw: bytes, received_at: datetime,
                     batch_sent_at: datetime | None = None, index: int = 0) -> Event:
        """Decode one event and normalise ids and time; raise with the reason."""
        if len(raw) > self.limits.max_event_bytes:
            raise InvalidEventError(
                index, f"event is {len(raw)} bytes; at most {self.limits.max_event_bytes} allowed")
        try:
            check_raw_event(raw)
            event = _event_decoder.decode(raw)
        except BoundsError as exc:
            raise InvalidEventError(index, str(exc)) from exc
        except msgspec.ValidationError as exc:
            raise InvalidEventError(index, str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise InvalidEventError(index, f"not valid JSON: {exc}") from exc
        except RecursionError as exc:  # unreachable after check_raw_event; kept as a guard
            raise InvalidEventError(index, f"nested deeper than {MAX_DEPTH} levels") from exc
        label = f"messageId {event.message_id}: " if event.message_id else ""
        try:
            if may_hold_big_ints(raw):
                for name, value in msgspec.structs.asdict(event).items():
                    check_integers(value, name)
            return self._normalise(event, _utc(received_at), batch_sent_at)
        except (ValueError, OverflowError) as exc:
            raise InvalidEventError(index, f"{label}{exc}") from exc

    @staticmethod
    def _event_time(event: Event, received_at: datetime, batch_sent_at: datetime | None) -> datetime:
        """When the event happened, corrected for the sender's clock skew (Segment's rule)."""
        happened = event.timestamp or event.original_timestamp
        sent_at = event.sent_at or batch_sent_at
        try:
            if happened is None:
                return received_at
            if sent_at is not None:
                return received_at - (_utc(sent_at) - _utc(happened))
            return _utc(happened)
        except OverflowError as exc:  # e.g. year 1 with a +01:00 offset, or a skew beyond the calendar
            raise ValueError("`timestamp` or `sentAt` is outside the representable range") from exc

    def _normalise(self, event: Event, received_at: datetime, batch_sent_at: datetime | None) -> Event:
        if not event.anonymous_id and not event.user_id:
            raise ValueError("either `anonymousId` or `userId` is required")
        _check_ids(event)
        if isinstance(event, Alias) and is_blocked_id(event.previous_id):
            raise ValueError(f"`previousId` {event.previous_id!r} is not a usable id")
        if is_blocked_id(event.anonymous_id):
            # Broken trackers send "null", "undefined" … for every visitor: such an id pools strangers, and
            # linking it on identify would hand every stranger's events to one user. Kept on the user, if any.
            if event.user_id is None or is_blocked_id(event.user_id):
                raise ValueError(f"`anonymousId` {event.anonymous_id!r} is not a usable id and there is no "
                                 "usable `userId`")
            event = msgspec.structs.replace(event, anonymous_id=None)
        if isinstance(event, Identify | Alias) and is_blocked_id(event.user_id):
            raise ValueError(f"`userId` {event.user_id!r} is not a usable id")
        if not event.anonymous_id and is_blocked_id(event.user_id):
            # It would belong to no contact: acked, then dropped by the dataflow.
            raise ValueError(f"`userId` {event.user_id!r} is not a usable id and there is no `anonymousId`")
        if isinstance(event, Track):
            if event.event.lower().startswith(RESERVED_EVENT_PREFIX):
                raise ValueError(f"`event` {event.event!r}: names starting with 'Attimo ' are reserved")
            _check_keys("properties", event.properties)
        if isinstance(event, Track | Page | Screen):
            _check_numbers("properties", event.properties)
        elif isinstance(event, Identify | Group):
            _check_numbers("traits", event.traits)
        timestamp = self._event_time(event, received_at, batch_sent_at)
        if timestamp - received_at > self.limits.max_future_skew:
            raise ValueError(f"`timestamp` {timestamp.isoformat()} is in the future")
        if received_at - timestamp > self.limits.max_event_age:
            raise ValueError(f"`timestamp` {timestamp.isoformat()} is older than the allowed age")
        limits = self.limits
        if event.context and (limits.anonymize_ip or not limits.keep_user_agent):
            scrubbed = scrub_context(event.context, limits.anonymize_ip, limits.keep_user_agent)
            if scrubbed is not None:
                event = msgspec.structs.replace(event, context=scrubbed)
        return msgspec.structs.replace(
            event,
            message_id=event.message_id or str(uuid.uuid4()),
            timestamp=timestamp,
            original_timestamp=None,
            sent_at=None,
            received_at=received_at,
            trust=None,  # only the ingest marks trust (`api.identity_mark`), never the client
        )


def limits_from(settings: Any) -> Limits:
    """Build `Limits` from a `Settings` object."""
    return Limits(
        max_event_bytes=settings.max_event_bytes,
        max_batch_bytes=settings.max_batch_bytes,
        max_events_per_batch=settings.max_events_per_batch,
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
        max_event_age=timedelta(seconds=settings.max_event_age_s),
        anonymize_ip=bool(settings.anonymize_ip),
        keep_user_agent=bool(settings.keep_user_agent),
    )

"""The event schema: what is accepted, and the precise reason for what is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import orjson
import pytest

from state.errors import InvalidBatchError
from state.events import Alias, Group, Identify, Page, Screen, Track
from state.validation import EventValidator, Limits

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
validator = EventValidator(Limits())


def one(event: dict[str, object], sent_at: datetime | None = None) -> object:
    return validator.validate_one(orjson.dumps(event), NOW, sent_at)


def reason(event: dict[str, object] | bytes) -> str:
    raw = event if isinstance(event, bytes) else msgspec.json.encode(event)
    batch = validator.validate_all([raw], NOW)
    assert not batch.accepted, "the event should have been rejected"
    return batch.rejected[0].error


class TestValidEvents:
    """Valid Segment events of every type decode to their Struct."""

    @pytest.mark.parametrize(("event", "kind"), [
        ({"type": "page", "anonymousId": "a", "name": "Home", "properties": {"path": "/"}}, Page),
        ({"type": "screen", "userId": "u", "name": "Cart"}, Screen),
        ({"type": "track", "anonymousId": "a", "event": "Product Added",
          "properties": {"product_id": "p1", "price": 9.5, "quantity": 2}}, Track),
        ({"type": "identify", "anonymousId": "a", "userId": "u@x.io",
          "traits": {"email": "u@x.io"}}, Identify),
        ({"type": "alias", "previousId": "a", "userId": "u"}, Alias),
        ({"type": "group", "userId": "u", "groupId": "acme", "traits": {"plan": "pro"}}, Group),
    ])
    def test_each_type_decodes(self, event: dict[str, object], kind: type) -> None:
        """page, screen, track, identify, alias and group are all accepted."""
        decoded = one(event)
        assert isinstance(decoded, kind)
        assert decoded.message_id  # type: ignore[attr-defined]
        assert decoded.received_at == NOW  # type: ignore[attr-defined]

    def test_clock_skew_is_corrected_from_sent_at(self) -> None:
        """A client clock 1 h fast: timestamp = receivedAt − (sentAt − timestamp)."""
        fast = NOW + timedelta(hours=1)
        happened = (fast - timedelta(seconds=5)).isoformat()
        event = one({"type": "page", "anonymousId": "a", "timestamp": happened}, sent_at=fast)
        assert event.timestamp == NOW - timedelta(seconds=5)  # type: ignore[attr-defined]

    def test_a_missing_timestamp_means_received_now(self) -> None:
        """Server-side events without a timestamp happened when received."""
        assert one({"type": "page", "anonymousId": "a"}).timestamp == NOW  # type: ignore[attr-defined]


class TestInvalidEvents:
    """Each invalid event gets a reason naming the field."""

    def test_missing_ids(self) -> None:
        """Neither anonymousId nor userId."""
        assert "either `anonymousId` or `userId` is required" in reason({"type": "page"})

    def test_unknown_type(self) -> None:
        """type must be one of the Segment types."""
        assert "`$.type`" in reason({"type": "teleport", "anonymousId": "a"})

    def test_track_without_event_name(self) -> None:
        """track needs `event`."""
        assert "`event`" in reason({"type": "track", "anonymousId": "a"})

    def test_wrong_type_of_id(self) -> None:
        """userId must be a string."""
        assert "`$.userId`" in reason({"type": "page", "userId": 5})

    def test_price_that_is_not_a_number(self) -> None:
        """Known numeric properties must be numbers."""
        assert "`properties.price` must be a number" in reason(
            {"type": "track", "anonymousId": "a", "event": "Product Added", "properties": {"price": "9"}})

    def test_number_out_of_range(self) -> None:
        """Revenue beyond any real shop is rejected."""
        assert "out of range" in reason({"type": "track", "anonymousId": "a", "event": "Order Completed",
                                         "properties": {"revenue": 1e20}})

    def test_oversize_event(self) -> None:
        """More than 32 KB for one event."""
        big = {"type": "track", "anonymousId": "a", "event": "X", "properties": {"blob": "x" * 40_000}}
        assert "at most 32768 allowed" in reason(big)

    def test_timestamp_far_in_the_future(self) -> None:
        """A timestamp a week ahead (after skew correction) is refused."""
        later = (NOW + timedelta(days=7)).isoformat()
        assert "in the future" in reason({"type": "page", "anonymousId": "a", "timestamp": later})

    def test_timestamp_far_in_the_past(self) -> None:
        """A timestamp two years old is refused."""
        old = (NOW - timedelta(days=800)).isoformat()
        assert "older than the allowed age" in reason({"type": "page", "anonymousId": "a", "timestamp": old})

    def test_malformed_timestamp(self) -> None:
        """A timestamp that is not ISO 8601."""
        assert "`$.timestamp`" in reason({"type": "page", "anonymousId": "a", "timestamp": "yesterday"})

    def test_not_json(self) -> None:
        """Broken JSON is reported as such."""
        assert "not valid JSON" in reason(b"{nope")

    def test_blocked_user_id_on_identify(self) -> None:
        """identify with userId "null" would merge strangers."""
        assert "not a usable id" in reason({"type": "identify", "anonymousId": "a", "userId": "null"})


class TestBatches:
    """A bad event never costs the good ones around it."""

    def test_good_events_in_a_batch_are_kept_and_bad_ones_listed_by_index(self) -> None:
        """Indexes 1 and 3 are rejected; 0 and 2 are accepted in order."""
        raws = [orjson.dumps(e) for e in (
            {"type": "page", "anonymousId": "a", "messageId": "m0"},
            {"type": "page"},
            {"type": "page", "anonymousId": "a", "messageId": "m2"},
            {"type": "track", "anonymousId": "a"},
        )]
        batch = validator.validate_all(raws, NOW)
        assert [e.message_id for e in batch.accepted] == ["m0", "m2"]
        assert [r.index for r in batch.rejected] == [1, 3]


def deep(levels: int) -> object:
    """A value nested `levels` arrays deep."""
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return value


class TestBoundsEveryLaterStepCanTake:
    """What is accepted can be stored, snapshotted, rendered and read back; the rest gets a reason."""

    def test_an_integer_beyond_64_bits_is_refused_naming_the_field(self) -> None:
        """The trait that once stopped the dataflow at every snapshot is refused at the edge."""
        text = reason({"type": "identify", "userId": "u", "traits": {"loyalty_points": 2**70}})
        assert "traits.loyalty_points" in text and "64 bits" in text

    @pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 123456789012345678])
    def test_integers_within_64_bits_are_accepted(self, value: int) -> None:
        """The signed 64-bit range is what msgpack, orjson and most languages read back."""
        event = one({"type": "identify", "userId": "u", "traits": {"n": value}})
        assert event.traits["n"] == value  # type: ignore[attr-defined]

    def test_nesting_up_to_32_levels_is_accepted_and_33_refused(self) -> None:
        """The event object is level 1, properties level 2, so a value may nest 30 deep."""
        assert one({"type": "page", "anonymousId": "a", "properties": {"x": deep(30)}})
        text = reason({"type": "page", "anonymousId": "a", "properties": {"x": deep(31)}})
        assert text == "nested 33 levels deep; at most 32 allowed"

    def test_nesting_beyond_the_decoders_recursion_limit_gets_a_reason_not_a_crash(self) -> None:
        """5 000 levels (in an unknown field) is one more rejected event."""
        raw = b'{"type":"page","anonymousId":"a","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
        assert "nested 5001 levels deep" in reason(raw)

    def test_a_frame_with_a_too_deep_event_keeps_its_other_events(self) -> None:
        """The frame is split without recursion: the good events are accepted, the deep one refused."""
        good = orjson.dumps({"type": "page", "anonymousId": "a"})
        bad = b'{"type":"page","anonymousId":"b","properties":{"x":' + b"[" * 3000 + b"]" * 3000 + b"}}"
        body = b'{"seq": 9, "batch": [' + good + b"," + bad + b"," + good + b'], "sentAt": "2026-11-23T12:00:00Z"}'
        seq, batch = validator.decode_frame(body, NOW)
        assert seq == 9 and len(batch.accepted) == 2
        assert [(r.index, r.error) for r in batch.rejected] == [(1, "nested 3002 levels deep; at most 32 allowed")]

    def test_an_http_batch_with_a_too_deep_context_keeps_its_events(self) -> None:
        """A batch-level field nested past any limit does not cost the batch its events."""
        good = orjson.dumps({"type": "page", "anonymousId": "a"})
        body = b'{"batch": [' + good + b'], "writeKey": "wk", "context": {"x": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
        envelope, batch = validator.decode_http_batch(body, NOW)
        assert envelope.write_key == "wk" and len(batch.accepted) == 1 and not batch.rejected

    @pytest.mark.parametrize(("fields", "expected"), [
        ({"timestamp": "0001-01-01T00:00:00+01:00"}, "outside the representable range"),
        ({"timestamp": "9999-12-31T23:59:59-01:00"}, "outside the representable range"),
        ({"timestamp": "9999-12-31T00:00:00Z", "sentAt": "0001-01-01T00:00:00Z"}, "outside the representable range"),
        ({"timestamp": "0001-01-02T00:00:00Z"}, "older than the allowed age"),
    ])
    def test_timestamps_near_the_calendars_ends_get_a_reason(self, fields: dict[str, str], expected: str) -> None:
        """Skew correction that would overflow the calendar is a rejected event, not a 500."""
        assert expected in reason({"type": "page", "anonymousId": "a", **fields})

    @pytest.mark.parametrize("seq", [2**53, 2**64, -1])
    def test_a_seq_a_client_cannot_have_is_a_frame_error(self, seq: int) -> None:
        """seq must be an integer JavaScript holds exactly; otherwise the frame is refused as a whole."""
        with pytest.raises(InvalidBatchError, match="seq"):
            validator.decode_frame(orjson.dumps({"seq": seq, "batch": []}) if seq < 2**64 else
                                   b'{"seq": 18446744073709551616, "batch": []}', NOW)

    @pytest.mark.parametrize("name", ["Attimo Tag Changed", "attimo list changed", "ATTIMO anything"])
    def test_reserved_event_names_are_refused(self, name: str) -> None:
        """Names starting with 'Attimo ' belong to the engine."""
        assert "reserved" in reason({"type": "track", "userId": "u", "event": name})

    @pytest.mark.parametrize("kind", ["attimo.tags", "attimo.list"])
    def test_internal_event_types_are_unknown_to_clients(self, kind: str) -> None:
        """A write key cannot tag contacts or put them on lists."""
        assert f"Invalid value '{kind}'" in reason({"type": kind, "userId": "u", "add": ["vip"],
                                                    "list_id": "l"})

    @pytest.mark.parametrize(("name", "value"), [("price", -1), ("quantity", -2), ("revenue", -5000),
                                                 ("quantity", 1e7), ("price", 1e13)])
    def test_amounts_must_be_within_zero_and_their_ceiling(self, name: str, value: float) -> None:
        """No negative carts or revenue, no cart worth 1e24."""
        text = reason({"type": "track", "userId": "u", "event": "Product Added", "properties": {name: value}})
        assert f"`properties.{name}` is out of range" in text

    @pytest.mark.parametrize("field", ["anonymousId", "userId", "messageId"])
    def test_ids_with_control_characters_are_refused(self, field: str) -> None:
        """Ids end up in keys, logs and URLs."""
        event = {"type": "page", "anonymousId": "a", field: "a\x00b"}
        assert f"`{field}` contains a control character" in reason(event)


class TestAmountsEverywhere:
    """Amounts are bounded wherever an event can carry them."""

    @pytest.mark.parametrize("event", [
        {"type": "page", "anonymousId": "a", "properties": {"price": -1}},
        {"type": "screen", "anonymousId": "a", "properties": {"value": float("1e13")}},
        {"type": "group", "userId": "u", "groupId": "g", "traits": {"revenue": -3}},
    ])
    def test_page_screen_and_group_amounts_are_checked_too(self, event: dict[str, object]) -> None:
        assert "is out of range" in reason(event)

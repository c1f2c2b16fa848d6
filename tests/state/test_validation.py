"""The event schema: what is accepted, and the precise reason for what is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from state.events import Alias, Group, Identify, Page, Screen, Track
from state.validation import EventValidator, Limits

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
validator = EventValidator(Limits())


def one(event: dict[str, object], sent_at: datetime | None = None) -> object:
    return validator.validate_one(orjson.dumps(event), NOW, sent_at)


def reason(event: dict[str, object] | bytes) -> str:
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
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

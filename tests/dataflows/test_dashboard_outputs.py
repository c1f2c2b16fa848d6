"""What the contact stages tell the operators' dashboard: heartbeats, active ids, shard sizes."""

from __future__ import annotations

from dataflows.io.outputs import ContactsSeen, HeartbeatSeen, ProfileDelete, ProfileWrite, TallyWrite
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, visitor_logic
from state import keys
from state.heartbeat import HEARTBEAT_EVENT, HeartbeatArrival, shard_ids
from tests.factories import FIXED_NOW, page, track


def visitors():  # type: ignore[no-untyped-def]
    return visitor_logic(ContactConfig(), ConfigLoader(None), lambda: FIXED_NOW.timestamp())(None)


def heartbeat(seq: int) -> object:
    return track(shard_ids(4)[seq % 4], HEARTBEAT_EVENT, sender="api-1", seq=seq, sent_at=1000.5)


class TestHeartbeat:
    """The visitor stage takes the heartbeat before the contact book."""

    def test_a_heartbeat_is_recorded_and_makes_no_contact(self) -> None:
        """A heartbeat yields its arrival and nothing else: no profile, no active id, no contact counted."""
        logic = visitors()
        out, _ = logic.on_batch([heartbeat(1), heartbeat(2)])
        assert [o for o in out if isinstance(o, HeartbeatSeen)] == [
            HeartbeatSeen(HeartbeatArrival("api-1", seq, 1000.5, FIXED_NOW.timestamp())) for seq in (1, 2)]
        assert [o for o in out if not isinstance(o, HeartbeatSeen)] == []
        assert len(logic.s.book) == 0

    def test_heartbeats_among_events_leave_the_visitors_counted_exactly(self) -> None:
        """Visitors beside heartbeats are counted, marked active and written as usual."""
        out, _ = visitors().on_batch([page("a1"), heartbeat(3), page("a2"), page("a1")])
        assert sorted(o.contact_id for o in out if isinstance(o, ProfileWrite)) == ["a1", "a2"]
        assert [o.ids for o in out if isinstance(o, ContactsSeen)] == [("a1", "a2")]
        sizes = [o for o in out if isinstance(o, TallyWrite) and o.key == keys.population()]
        assert len(sizes) == 1 and sizes[0].value == 2
        assert sizes[0].field.startswith("visitors:") and sizes[0].field.endswith(":contacts")

    def test_an_id_with_the_reserved_prefix_but_no_heartbeat_is_a_visitor(self) -> None:
        """Only a well-formed heartbeat is skipped: other events keep every effect."""
        out, _ = visitors().on_batch([page(shard_ids(4)[0])])
        assert [o.contact_id for o in out if isinstance(o, ProfileWrite)] == [shard_ids(4)[0]]


class TestPopulation:
    """Each shard reports its size when it changes, never otherwise."""

    def test_the_size_is_written_only_when_it_changes(self) -> None:
        logic = visitors()
        logic.on_batch([page("a1")])
        out, _ = logic.on_batch([page("a1")])
        assert not [o for o in out if isinstance(o, TallyWrite) and o.key == keys.population()]

    def test_a_visitor_who_signs_in_leaves_the_visitors(self) -> None:
        """Identified: the anonymous profile is deleted (the sink drops it from the active set) and the count falls."""
        logic = visitors()
        logic.on_batch([page("a1")])
        out, _ = logic.on_batch([track("a1", "Signed Up", user_id="u1")])
        assert ProfileDelete("a1") in out
        sizes = [o.value for o in out if isinstance(o, TallyWrite) and o.key == keys.population()]
        assert sizes == [0]

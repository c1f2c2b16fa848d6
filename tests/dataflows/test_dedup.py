"""Exactly once against resends: a contact's message ids, remembered within a window of time and count."""

from __future__ import annotations

import uuid
from datetime import timedelta
from zlib import crc32

from dataflows.io.outputs import Handoff, ProfileWrite, Routed
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.dedup import DedupWindow, SeenIds, first_time
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state.events import Identify
from state.profile import decode_profile
from tests.factories import FIXED_NOW, track

T0 = FIXED_NOW.timestamp()


# Two random UUIDs with the same CRC32, found by a birthday search over 66 763 of them.
CRC32_TWINS = ("ff05ad15-25f5-4f62-9a7a-3ceeddacab27", "3ba735d7-c172-4bb4-92c7-ee40d6217fdf")


class TestWindow:
    """A resend is recognised while the original is within the window's time and count."""

    window = DedupWindow(window_s=3600, max_ids=100)

    def test_a_resend_within_the_window_is_dropped(self) -> None:
        """Seen 59 min 59 s ago, with 99 others since: still a resend."""
        seen = SeenIds()
        assert first_time(seen, "m0", T0, self.window)
        for i in range(99):
            assert first_time(seen, f"other-{i}", T0 + i, self.window)
        assert not first_time(seen, "m0", T0 + 3599, self.window)

    def test_an_id_is_remembered_for_the_whole_window(self) -> None:
        """Resent exactly `window_s` after it came: still a resend."""
        seen = SeenIds()
        first_time(seen, "m0", T0, self.window)
        first_time(seen, "m1", T0 + 1800, self.window)
        assert not first_time(seen, "m0", T0 + 3600, self.window)

    def test_the_count_bound_forgets_the_oldest_in_batches(self) -> None:
        """Past 1.25 × `max_ids` the oldest go, down to `max_ids`: memory stays bounded."""
        seen = SeenIds()
        first_time(seen, "m0", T0, self.window)
        for i in range(125):
            first_time(seen, f"other-{i}", T0, self.window)
        assert len(seen) == 100
        assert first_time(seen, "m0", T0, self.window)

    def test_the_time_bound_forgets_what_is_well_past_the_window(self) -> None:
        """An id more than 1.1 × `window_s` old is gone at the next event."""
        seen = SeenIds()
        first_time(seen, "m0", T0, self.window)
        assert first_time(seen, "m1", T0 + 3961, self.window)
        assert len(seen) == 1
        assert first_time(seen, "m0", T0 + 3962, self.window)

    def test_ids_with_the_same_crc32_are_both_counted(self) -> None:
        """The old 32-bit de-duplication dropped one of these as a resend: a real order lost."""
        a, b = CRC32_TWINS
        assert a != b and crc32(a.encode()) == crc32(b.encode())
        seen = SeenIds()
        assert first_time(seen, a, T0, self.window) and first_time(seen, b, T0, self.window)


def orders(user: str, count: int) -> list[object]:
    return [track("anon-1", "Order Completed", FIXED_NOW + timedelta(seconds=i), user_id=user,
                  order_id=str(uuid.uuid4()), revenue=1.0) for i in range(count)]


class TestThroughTheStages:
    """Resends reach the contact stage as the tracker and Segment's libraries make them."""

    def setup_method(self) -> None:
        config = ContactConfig()
        loader = ConfigLoader(None)
        self.visitors = visitor_logic(config, loader, lambda: T0)(None)
        self.contacts = contact_logic(config, loader, lambda: T0)(None)

    def send(self, events: list[object]) -> dict[str, int]:
        out, _ = self.visitors.on_batch(events)
        onward = [o for o in out if isinstance(o, Routed | Handoff)]
        written, _ = self.contacts.on_batch(onward)
        return {o.contact_id: decode_profile(o.profile_json).counters.orders
                for o in [*out, *written] if isinstance(o, ProfileWrite)}

    def test_a_resent_frame_of_100_events_counts_100(self) -> None:
        """The old 32-id memory counted a resent 100-event frame 200 times."""
        frame = orders("u1", 100)
        assert self.send(frame)["u1"] == 100
        assert self.send(frame).get("u1", 100) == 100

    def test_one_event_resent_after_40_others_counts_once(self) -> None:
        """Beyond the old memory of 32, still within today's window."""
        first, *others = orders("u1", 41)
        self.send([first])
        self.send(others)
        assert self.send([first]).get("u1", 41) == 41

    def test_a_visitors_event_resent_after_identify_counts_once(self) -> None:
        """The visitor's remembered ids move with its history into the contact."""
        anonymous = track("anon-1", "Order Completed", order_id="o1", revenue=5.0)
        self.send([anonymous])
        login = Identify(message_id="login", anonymous_id="anon-1", user_id="u1", timestamp=FIXED_NOW,
                         received_at=FIXED_NOW)
        assert self.send([login])["u1"] == 1
        assert self.send([anonymous]).get("u1", 1) == 1

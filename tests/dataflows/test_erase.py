"""Erase in one contact shard's logic (no Bytewax, no Redis): what the shard forgets, keeps and stops.

The end-to-end behaviour (Redis, recovery store, dispatcher) is in
`tests/e2e/test_privacy_erase.py`; these pin the shard's own part fast.
"""

from __future__ import annotations

import time

from dataflows.io.outputs import BlockedEvents, ContactErased, EraseDone, ProfileWrite, ShardErase
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, visitor_logic
from state.erasure import EraseAnswer, EraseControl, hashes_of
from tests.factories import page, track

CONFIG = ContactConfig(contact_shards=1)


def _visitors(resume: bytes | None = None):  # type: ignore[no-untyped-def]
    return visitor_logic(CONFIG, ConfigLoader(None), time.time)(resume)


def _erase(*ids: str, lift: bool = False) -> ShardErase:
    return ShardErase(EraseControl("e1", hashes_of(ids), 1.0, lift=lift), "0")


class TestEraseInAShard:
    """The shard forgets the erased visitor in its snapshot, reports it, and drops its later events."""

    def test_the_snapshot_no_longer_holds_the_erased_visitor_but_the_other(self) -> None:
        logic = _visitors()
        logic.on_batch([page("gone-visitor"), track("kept-visitor", "Product Viewed", product_id="p1")])
        assert b"gone-visitor" in logic.snapshot()
        out, _ = logic.on_batch([_erase("gone-visitor")])
        assert ContactErased(("gone-visitor",)) in out
        assert EraseDone("e1", "visitors:0", EraseAnswer(1, 0)) in out
        snapshot = logic.snapshot()
        assert b"gone-visitor" not in snapshot and b"kept-visitor" in snapshot

    def test_a_link_to_an_erased_user_goes_with_both_ids(self) -> None:
        logic = _visitors()
        logic.on_batch([page("device-9"), track("device-9", "Signed Up", user_id="user-9")])
        assert b"device-9" in logic.snapshot()
        out, _ = logic.on_batch([_erase("user-9")])
        erased = [o for o in out if isinstance(o, ContactErased)]
        assert erased and {"device-9", "user-9"} <= set(erased[0].ids)
        assert b"device-9" not in logic.snapshot() and b"user-9" not in logic.snapshot()

    def test_tombstones_survive_a_restart_and_stop_later_events_until_lifted(self) -> None:
        logic = _visitors()
        logic.on_batch([_erase("gone-visitor")])
        resumed = _visitors(logic.snapshot())
        out, _ = resumed.on_batch([page("gone-visitor")])
        assert not [o for o in out if isinstance(o, ProfileWrite)]
        assert [o for o in out if isinstance(o, BlockedEvents) and o.ids == ("gone-visitor",)]
        resumed.on_batch([_erase("gone-visitor", lift=True)])
        out, _ = resumed.on_batch([page("gone-visitor")])
        assert [o for o in out if isinstance(o, ProfileWrite) and o.contact_id == "gone-visitor"]

    def test_events_before_the_erase_in_the_same_batch_are_erased_too(self) -> None:
        out, _ = _visitors().on_batch([page("gone-visitor"), _erase("gone-visitor"), page("gone-visitor")])
        assert ContactErased(("gone-visitor",)) in out
        writes = [o for o in out if isinstance(o, ProfileWrite)]
        assert len(writes) == 1  # the first page's write, before the erase; the sink deletes it after
        assert out.index(writes[0]) < out.index(ContactErased(("gone-visitor",)))

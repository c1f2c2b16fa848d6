"""Segment count preview in the contact stages: a count per shard, once, and nothing else changes."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from dataflows.flow import contact_router, visitor_router
from dataflows.io.outputs import Handoff, PreviewCount, Routed, ShardControl, ShardPreview
from dataflows.rules.live_config import ConfigLoader
from dataflows.shard.stages import ContactConfig, contact_logic, visitor_logic
from state.config import Condition
from state.events import Identify, Page
from state.segment_preview import PreviewControl, expected_fields

SHARDS: Final = 4
NOW: Final = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
GOLD: Final = msgspec.json.decode(b'{"kind": "trait", "name": "plan", "value": "gold"}', type=Condition)


class Stages:
    """Both stages, one logic per contact shard, wired as `flow.build_flow` wires them."""

    def __init__(self) -> None:
        self.loader = ConfigLoader(None)
        self.config = ContactConfig(contact_shards=SHARDS)
        self.visitors: dict[str, Any] = {}
        self.contacts: dict[str, Any] = {}

    def feed(self, items: list[Any]) -> list[Any]:
        """One activation of every shard the items reach; what goes to the sink."""
        clock = NOW.timestamp
        visitor_batches: dict[str, list[Any]] = defaultdict(list)
        for item in items:
            for key, value in visitor_router(SHARDS)(item):
                visitor_batches[key].append(value)
        sink: list[Any] = []
        onward: dict[str, list[Any]] = defaultdict(list)
        route = contact_router(SHARDS)
        for key, values in visitor_batches.items():
            logic = self.visitors.setdefault(key, visitor_logic(self.config, self.loader, clock)(None))
            out, _ = logic.on_batch(values)
            for value in out:
                if isinstance(value, Routed | Handoff | ShardControl | ShardPreview):
                    to, item = route((key, value))
                    onward[to].append(item)
                else:
                    sink.append(value)
        for key, values in onward.items():
            logic = self.contacts.setdefault(key, contact_logic(self.config, self.loader, clock)(None))
            out, _ = logic.on_batch(values)
            sink += list(out)
        return sink

    def snapshots(self) -> dict[str, bytes]:
        return {f"v{k}": v.snapshot() for k, v in self.visitors.items()} | {
            f"c{k}": v.snapshot() for k, v in self.contacts.items()}


def identify(user: str, plan: str) -> Identify:
    return Identify(message_id=str(uuid.uuid4()), user_id=user, timestamp=NOW, received_at=NOW,
                    traits={"plan": plan})


def page(anonymous_id: str) -> Page:
    return Page(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, timestamp=NOW, received_at=NOW)


def control(expires_in: float = 5.0) -> PreviewControl:
    return PreviewControl(uuid.uuid4().hex, GOLD, NOW.timestamp() + expires_in)


def seeded() -> Stages:
    stages = Stages()
    stages.feed([identify(f"u{i}", "gold" if i % 3 == 0 else "silver") for i in range(12)]
                + [page(f"anon-{i}") for i in range(5)])
    return stages


class TestPreviewInTheStages:
    """Every shard of both stages answers once with its count; nothing else comes out, nothing changes."""

    def test_every_shard_answers_and_the_counts_add_up(self) -> None:
        stages = seeded()
        out = stages.feed([control()])
        assert all(isinstance(o, PreviewCount) for o in out), out
        assert sorted(o.field for o in out) == sorted(expected_fields(SHARDS))
        assert sum(o.answer.matching for o in out) == 4  # u0, u3, u6, u9
        assert sum(o.answer.evaluated for o in out) == 12 + 5
        assert sum(o.answer.failed for o in out) == 0

    def test_the_preview_changes_no_contact(self) -> None:
        stages = seeded()
        before = stages.snapshots()
        stages.feed([control()])
        assert stages.snapshots() == before

    def test_each_preview_is_answered_once_though_every_stream_carries_a_copy(self) -> None:
        stages = seeded()
        preview = control()
        first = stages.feed([preview, preview])
        again = stages.feed([preview])
        assert len(first) == 2 * SHARDS and again == []

    def test_an_expired_preview_met_again_is_ignored(self) -> None:
        stages = seeded()
        assert stages.feed([control(expires_in=-1)]) == []

    def test_events_before_the_preview_in_the_same_batch_are_counted(self) -> None:
        stages = seeded()
        out = stages.feed([identify("late", "gold"), control()])
        assert sum(o.answer.matching for o in out if isinstance(o, PreviewCount)) == 5

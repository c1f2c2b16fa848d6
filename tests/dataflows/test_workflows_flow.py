"""Workflows through the real dataflow process: actions reach the outbox on time, and once, across kill -9."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from state import keys
from state.actions import OUTBOX_FIELD, Action, decode_action
from state.config import ActiveConfig, EventMatch
from state.outbox import outbox_shard
from state.workflows import Delay, Goal, MessagingPolicy, OnEvent, SendWebhook, Workflow
from tests.dataflows.live import SHARDS, live_track, profile, publish, send
from tests.helpers import RedisServer, running_dataflow, wait_for

OUTBOX_SHARDS = 3  # not the default (4): the dataflow must follow ATTIMO_OUTBOX_SHARDS like the dispatcher
SETTINGS = {"stream_shards": str(SHARDS), "outbox_shards": str(OUTBOX_SHARDS)}
WELCOME = Workflow(id="welcome", trigger=OnEvent(EventMatch("Signed Up")),
                   goal=Goal(event=EventMatch("Order Completed")),
                   steps=[SendWebhook(id="hello", endpoint="esp", next="wait"),
                          Delay(id="wait", seconds=2.0, next="tips"), SendWebhook(id="tips", endpoint="esp")])
CONFIG = ActiveConfig(workflows=[WELCOME], messaging=MessagingPolicy(caps={}, quiet_hours=None))


def outbox(client: redis.Redis) -> list[tuple[float, Action]]:
    """Every action in the outbox with the moment it was appended (from its entry id).

    Each must sit in its contact's outbox shard, where the dispatcher that owns that shard reads it.
    """
    found = []
    for shard in range(OUTBOX_SHARDS + 1):
        for entry_id, fields in client.xrange(keys.outbox(shard)):
            action = decode_action(fields[OUTBOX_FIELD])
            assert shard == outbox_shard(action.contact.contact_id, OUTBOX_SHARDS), action.id
            found.append((int(entry_id.split(b"-")[0]) / 1000, action))
    return found


def steps(client: redis.Redis) -> list[str]:
    return sorted(action.step_id for _, action in outbox(client))


class TestWorkflowsThroughTheDataflow:
    """A trigger acts within a second of its cause; a delay ends within a second of its due time."""

    def test_actions_leave_on_time(self, redis_server: RedisServer, tmp_path: Path) -> None:
        client = redis_server.client()
        with running_dataflow(redis_server.url, tmp_path / "df", **SETTINGS):
            publish(redis_server.url, CONFIG)
            send(client, [live_track("warm-up", "Page Loaded")])  # timed from a dataflow through its start-up
            wait_for(lambda: profile(client, "warm-up") is not None, 10, "the dataflow to be running")
            sent_at = time.time()
            send(client, [live_track(f"v{i}", "Signed Up") for i in range(20)])
            wait_for(lambda: steps(client).count("hello") == 20, 5, "20 first actions")
            hello = [at for at, action in outbox(client) if action.step_id == "hello"]
            assert max(hello) - sent_at < 1.0
            wait_for(lambda: steps(client).count("tips") == 20, 10, "20 actions after the delay")
            # Each contact's second action: 2 s after its first (the delay), late by less than a second.
            at = {(a.contact.contact_id, a.step_id): t for t, a in outbox(client)}
            gaps = [round(at[(c, "tips")] - at[(c, "hello")], 3) for c, step in at if step == "hello"]
            assert len(gaps) == 20 and all(1.95 <= gap < 3.0 for gap in gaps), gaps

    def test_a_goal_before_the_delay_ends_sends_nothing_more(self, redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
        client = redis_server.client()
        with running_dataflow(redis_server.url, tmp_path / "df", **SETTINGS):
            publish(redis_server.url, CONFIG)
            time.sleep(0.5)
            send(client, [live_track("buyer", "Signed Up")])
            wait_for(lambda: steps(client) == ["hello"], 5, "the first action")
            send(client, [live_track("buyer", "Order Completed", order_id="o1", revenue=5.0)])
            time.sleep(3.0)
            assert steps(client) == ["hello"]

    def test_kill_9_between_the_two_actions_leaves_each_once(self, redis_server: RedisServer,
                                                            tmp_path: Path) -> None:
        """The replay decides the same action ids; the outbox takes each once."""
        client = redis_server.client()
        data = tmp_path / "df"
        with running_dataflow(redis_server.url, data, **SETTINGS) as dataflow:
            publish(redis_server.url, CONFIG)
            time.sleep(0.5)
            send(client, [live_track(f"v{i}", "Signed Up") for i in range(30)])
            wait_for(lambda: steps(client).count("hello") == 30, 5, "the first actions")
            dataflow.kill_hard()
        with running_dataflow(redis_server.url, data, **SETTINGS):
            wait_for(lambda: steps(client).count("tips") == 30, 15, "the delayed actions after the restart")
            time.sleep(1.5)
        assert steps(client) == ["hello"] * 30 + ["tips"] * 30
        assert len({action.id for _, action in outbox(client)}) == 60

"""Popups through the real dataflow process: targeting, frequency and the shared cap, read back from Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import redis

from api.campaign_stats import sum_fields
from state import keys
from state.actions import OUTBOX_FIELD, decode_action
from state.campaigns import Campaign, Frequency, Variant
from state.conditions import InSegment, UtmSource, WindowCount
from state.config import ActiveConfig, EventMatch, SegmentDef
from state.decisions import DecisionDoc, PopupContent, decode_doc
from state.frames import decode_push
from state.workflows import MessagingPolicy, OnEvent, SendWebhook, SharedCap, Workflow
from tests.dataflows.live import SHARDS, live_page, live_track, profile, publish, send
from tests.helpers import RedisServer, running_dataflow, wait_for

SETTINGS = {"stream_shards": str(SHARDS)}
EVERY_TIME = Frequency(once_per_session=False, cooldown_after_close_s=0)


def popup(campaign_id: str, **fields: Any) -> Campaign:
    return Campaign(id=campaign_id, variants=[Variant(id="a", content=PopupContent(title=campaign_id))], **fields)


def doc(client: redis.Redis, any_id: str) -> DecisionDoc | None:
    raw = client.get(keys.decision_doc(any_id))
    return decode_doc(raw) if raw else None


def offered(client: redis.Redis, any_id: str) -> list[str]:
    found = doc(client, any_id)
    return [] if found is None else [p.campaign for p in found.popups]


def outbox(client: redis.Redis) -> list[str]:
    return [decode_action(f[OUTBOX_FIELD]).step_id for shard in range(5) for _, f in client.xrange(keys.outbox(shard))]


def listen(url: str) -> tuple[list[tuple[list[str], DecisionDoc]], Any]:
    """Collect decision pushes in a thread; returns (the list, a stop function)."""
    seen: list[tuple[list[str], DecisionDoc]] = []
    pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)

    def on_message(message: dict[str, Any]) -> None:
        push = decode_push(message["data"])
        seen.append((push.ids, msgspec.json.decode(push.decision, type=DecisionDoc)))

    pubsub.subscribe(**{keys.decision_push_channel(): on_message})
    worker = pubsub.run_in_thread(sleep_time=0.01, daemon=True)
    return seen, worker.stop


class TestTargetingAndPush:
    """A popup appears in the visitor's document and is pushed within the session it became due."""

    def test_entering_a_segment_brings_the_popup_and_a_push(self, redis_server: RedisServer, tmp_path: Path) -> None:
        client = redis_server.client()
        shoes = SegmentDef("shoe-lovers", WindowCount("category", "shoes", 3600, "gte", 2))
        config = ActiveConfig(segments=[shoes], campaigns=[
            popup("shoes", when=InSegment("shoe-lovers"), public=["segments"]),
            popup("news", when=UtmSource(["newsletter"]))])
        seen, stop = listen(redis_server.url)
        try:
            with running_dataflow(redis_server.url, tmp_path / "df", **SETTINGS):
                publish(redis_server.url, config)
                send(client, [live_track("warm-up", "Page Loaded")])
                wait_for(lambda: profile(client, "warm-up") is not None, 10, "the dataflow to be running")
                send(client, [live_track("v1", "Product Viewed", product_id="p1", category="shoes")])
                wait_for(lambda: doc(client, "v1") is not None, 5, "the first document")
                assert offered(client, "v1") == []
                sent_at = time.monotonic()
                send(client, [live_track("v1", "Product Viewed", product_id="p2", category="shoes")])
                wait_for(lambda: offered(client, "v1") == ["shoes"], 5, "the popup")
                assert time.monotonic() - sent_at < 2.0
                wait_for(lambda: any(d.popups for _, d in seen), 2, "the push")
                ids, pushed = next((i, d) for i, d in seen if d.popups)
                assert ids == ["v1"] and pushed.public == {"segments": ["shoe-lovers"]}
                assert pushed.seeds.viewed == ["p2", "p1"]
                send(client, [live_page("v2")])
                wait_for(lambda: profile(client, "v2") is not None, 5, "v2's profile")
                assert offered(client, "v2") == []
        finally:
            stop()


EMAIL = Workflow(id="mail", trigger=OnEvent(EventMatch("Signed Up")),
                 steps=[SendWebhook(id="hello", endpoint="esp", channel="email")])


class TestFrequencyAndTheSharedCap:
    """Frequency and the one cap for popups and messages hold in the running dataflow, timers included."""

    def test_a_popup_impression_holds_the_email_and_an_email_holds_popups(self, redis_server: RedisServer,
                                                                         tmp_path: Path) -> None:
        client = redis_server.client()
        policy = MessagingPolicy(caps={}, quiet_hours=None, shared_cap=SharedCap(window_s=3.0))
        config = ActiveConfig(workflows=[EMAIL], messaging=policy, campaigns=[popup("promo", frequency=EVERY_TIME)])
        with running_dataflow(redis_server.url, tmp_path / "df", **SETTINGS):
            publish(redis_server.url, config)
            send(client, [live_page("seen"), live_page("mailed")])
            wait_for(lambda: offered(client, "seen") == offered(client, "mailed") == ["promo"], 10, "both offered")
            send(client, [live_track("seen", "Popup Shown", campaign="promo", variant="a")])
            wait_for(lambda: offered(client, "seen") == [], 5, "the cap to withdraw the popup")
            send(client, [live_track("seen", "Signed Up"), live_track("mailed", "Signed Up")])
            wait_for(lambda: outbox(client) == ["hello"], 5, "the one e-mail within the cap")

            def held() -> list[tuple[str, str | None]]:
                found = profile(client, "seen")
                return [(a.outcome, a.reason) for a in found.actions] if found else []

            wait_for(lambda: held() == [("held", "shared frequency cap")], 5, "the held e-mail")
            wait_for(lambda: offered(client, "mailed") == [], 5, "the e-mail to withdraw the popup")
            # Both come back by the contacts' timers once the touch leaves the 3 s window, with no event.
            wait_for(lambda: offered(client, "mailed") == ["promo"] and offered(client, "seen") == ["promo"],
                     6, "the popups back after the window")

    def test_once_per_session_and_never_after_conversion(self, redis_server: RedisServer, tmp_path: Path) -> None:
        client = redis_server.client()
        config = ActiveConfig(campaigns=[popup("once"), popup("buy", frequency=EVERY_TIME)])
        with running_dataflow(redis_server.url, tmp_path / "df", **SETTINGS):
            publish(redis_server.url, config)
            send(client, [live_page("v1")])
            wait_for(lambda: sorted(offered(client, "v1")) == ["buy", "once"], 10, "both offered")
            send(client, [live_track("v1", "Popup Shown", campaign="once", variant="a"),
                          live_track("v1", "Popup Shown", campaign="buy", variant="a")])
            wait_for(lambda: offered(client, "v1") == ["buy"], 5, "once per session")
            send(client, [live_track("v1", "Order Completed", order_id="o1", revenue=30.0)])
            wait_for(lambda: offered(client, "v1") == [], 5, "nothing after the conversion")

            def stats() -> dict[str, dict[str, int]]:
                return sum_fields(client.hgetall(keys.campaign_stats("buy")))  # type: ignore[arg-type]

            wait_for(lambda: stats().get("a", {}).get("conversions") == 1, 5, "the conversion counted")
            assert stats()["a"]["impressions"] == 1 and stats()["a"]["contacts"] == 1


class TestExactlyOnceStats:
    """Stats are exact across kill -9: the replay rewrites the same totals."""

    def test_impressions_count_once_across_a_crash(self, redis_server: RedisServer, tmp_path: Path) -> None:
        client = redis_server.client()
        data = tmp_path / "df"
        config = ActiveConfig(campaigns=[popup("promo", frequency=EVERY_TIME)])

        def impressions() -> int:
            return sum_fields(client.hgetall(keys.campaign_stats("promo"))).get(  # type: ignore[arg-type]
                "a", {}).get("impressions", 0)

        with running_dataflow(redis_server.url, data, **SETTINGS) as dataflow:
            publish(redis_server.url, config)
            time.sleep(0.5)
            send(client, [live_track(f"v{i}", "Popup Shown", campaign="promo", variant="a") for i in range(40)])
            wait_for(lambda: impressions() == 40, 10, "40 impressions")
            dataflow.kill_hard()
        with running_dataflow(redis_server.url, data, **SETTINGS):
            send(client, [live_track(f"v{i}", "Popup Shown", campaign="promo", variant="a") for i in range(40, 60)])
            wait_for(lambda: impressions() == 60, 15, "60 impressions after the restart")
            time.sleep(1.0)
            assert impressions() == 60


"""The read: one script per answer; the products' documents a process holds are not sent again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis

from api.decisions.answer import public_decisions
from api.decisions.read import HELD, SCRIPT, DecisionRead, parse_reply, script_args
from api.decisions.reader import DecisionReader
from api.decisions.redis_wire import PipelinedRedis
from state import keys
from state.recommendations import NeighbourView, TrendingView, read_ids
from tests.api.decisions.store import anonymous_doc, save_doc, save_neighbours, save_trending, shop
from tests.helpers import RedisServer


@pytest.fixture
async def wire(redis_server: RedisServer) -> AsyncIterator[PipelinedRedis]:
    client = PipelinedRedis.from_url(redis_server.url)
    yield client
    await client.close()


def calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def composed_from_redis(client: redis.Redis, contact: str) -> bytes:
    """The answer composed from the documents in Redis now, read with plain GETs (nothing held)."""
    found = client.get(keys.decision_doc(contact))
    doc = parse_reply([found, [], [None]]).doc
    wanted = read_ids(doc.seeds) if doc is not None else []
    documents = client.mget([keys.product_neighbours(p) for p in wanted]) if wanted else []
    trending = client.get(keys.trending())
    return public_decisions(DecisionRead(doc, {p: d for p, d in zip(wanted, documents, strict=True) if d},
                                         trending if isinstance(trending, bytes) else None))


def raw(document: bytes | NeighbourView | TrendingView | None) -> bytes | None:
    """A document's bytes, whether the read kept it decoded or not."""
    return document.raw if isinstance(document, NeighbourView | TrendingView) else document


def as_strips(read: DecisionRead) -> tuple[set[str], bytes | None]:
    return set(read.neighbours), raw(read.trending)


class TestHeldDocuments:
    """A process keeps the products' documents it read for `hold_s` and Redis stops sending them."""

    async def test_a_second_read_moves_only_the_contacts_document(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """The second answer is the same, and the script's MGET of the products' documents never ran."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=30)
        first = await reader.read("anon-1")
        redis_client.config_resetstat()
        second = await reader.read("anon-1")
        assert as_strips(second) == as_strips(first) == ({"p1", "p2", "c1"}, raw(first.trending))
        assert raw(first.trending) is not None
        assert calls(redis_client, "evalsha") == 1 and calls(redis_client, "mget") == 0

    async def test_a_rewritten_document_is_answered_once_its_hold_has_passed(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """Recommendations may be `hold_s` old, never older."""
        save_trending(redis_client, ["t1"])
        reader = DecisionReader(wire, hold_s=0.3)
        before = raw((await reader.read("anyone")).trending)
        save_trending(redis_client, ["t2"])
        assert raw((await reader.read("anyone")).trending) == before
        await asyncio.sleep(0.35)
        after = raw((await reader.read("anyone")).trending)
        assert after is not None and b"t2" in after

    async def test_a_rewritten_neighbour_document_is_answered_once_its_hold_has_passed(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """A held document is kept decoded, never longer than `hold_s`: then the answer is the new bytes'."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=0.3)
        before = public_decisions(await reader.read("anon-1"))
        save_neighbours(redis_client, "p1", viewed=["n7"])
        assert public_decisions(await reader.read("anon-1")) == before
        await asyncio.sleep(0.35)
        after = public_decisions(await reader.read("anon-1"))
        assert b'"n7"' in after and b'"n1"' not in after
        assert after == composed_from_redis(redis_client, "anon-1")

    async def test_a_document_sent_again_unchanged_stays_decoded(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """When a hold ends Redis sends the document again; the same bytes keep the view (and its cards)."""
        save_trending(redis_client, ["t1"])
        reader = DecisionReader(wire, hold_s=0.05)
        first = (await reader.read("anyone")).trending
        await asyncio.sleep(0.1)
        redis_client.config_resetstat()
        again = (await reader.read("anyone")).trending
        assert calls(redis_client, "mget") == 1  # sent again …
        assert isinstance(first, TrendingView) and again is first  # … and not decoded again

    async def test_a_document_skipped_but_no_longer_held_is_fetched_again(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """Dropped from the process while Redis still counts it held: one more read, the answer is whole."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=30)
        first = await reader.read("anon-1")
        reader._held.clear()  # as if dropped while a read was in flight
        again = await reader.read("anon-1")
        assert reader.refetches == 1
        assert {p: raw(d) for p, d in again.neighbours.items()} == {p: raw(d) for p, d in first.neighbours.items()}
        assert raw(again.trending) == raw(first.trending)

    async def test_over_the_limit_the_oldest_documents_are_dropped_and_redis_is_told(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """The held set stays bounded in the process and in Redis."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=30, max_held=2)
        await reader.read("anon-1", product="p5")
        reader._next_prune_ms = 0
        await reader.read("anon-2", product="p6")
        await wire.call("PING")  # the fire-and-forget updates are ahead of it on the connection
        assert len(reader._held) <= 2 + 2  # pruned before the newest two were added
        held = {m.decode() for m in redis_client.zrange(reader.held_key, 0, -1)}
        assert held <= set(reader._held)

    async def test_without_hold_every_read_sends_every_document(
            self, wire: PipelinedRedis, redis_client: redis.Redis) -> None:
        """`hold_s=0`: nothing kept, nothing announced."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=0)
        await reader.read("anon-1")
        redis_client.config_resetstat()
        await reader.read("anon-1")
        assert calls(redis_client, "mget") == 1 and not redis_client.keys(keys.decisions_held("*"))


class TestScriptCache:
    """Redis forgetting the script (restart, SCRIPT FLUSH) costs one reload, not an error."""

    async def test_the_script_is_loaded_again_after_a_flush(self, wire: PipelinedRedis,
                                                            redis_client: redis.Redis) -> None:
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=0)
        await reader.read("anon-1")
        redis_client.script_flush()
        read = await reader.read("anon-1")
        assert read.doc is not None and read.doc.contact_id == "anon-1"

    async def test_a_redis_without_zmscore_gets_the_same_reply(self, wire: PipelinedRedis,
                                                              redis_client: redis.Redis) -> None:
        """Before Redis 6.2 the script asks each held document's score on its own: same documents skipped."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        reader = DecisionReader(wire, hold_s=30)
        await reader.read("anon-1")  # trending, p1, p2 and c1 are held from here on
        await wire.call("PING")
        args = script_args("anon-1", "p9", reader.held_key, int(time.time() * 1000))
        older = SCRIPT.replace("'ZMSCORE'", "'NO-SUCH-COMMAND'")
        assert older != SCRIPT
        reply = redis_client.eval(SCRIPT, 0, *args)
        assert redis_client.eval(older, 0, *args) == reply
        assert reply[2] == [HELD, None, HELD, HELD, HELD]  # trending, p9 (no document), c1, p1, p2


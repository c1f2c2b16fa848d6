"""The source's read index: entries behind = XINFO's entries-added minus it, exact once learnt."""

from __future__ import annotations

from typing import Any, cast

import redis

from dataflows.io.read_index import ReadIndex

STREAM = "s"


def add(client: redis.Redis, n: int) -> list[str]:
    return [cast("bytes", client.xadd(STREAM, {b"e": b"[]"})).decode() for _ in range(n)]


def read_after(client: redis.Redis, after: str, count: int = 100) -> list[Any]:
    reply: Any = client.xread({STREAM: after}, count=count)
    return list(reply[0][1]) if reply else []


def added(client: redis.Redis) -> int:
    return int(client.xinfo_stream(STREAM)["entries-added"])


class TestReadIndex:
    """The index equals the entries added up to the position, once the start-up backlog is read."""

    def test_a_stream_that_does_not_exist_yet_starts_at_zero(self, redis_client: redis.Redis) -> None:
        index = ReadIndex(redis_client, STREAM, "0-0")
        assert index.known == 0
        add(redis_client, 3)
        index.read(read_after(redis_client, "0-0"))
        assert index.known == added(redis_client) == 3

    def test_the_backlog_at_start_is_learnt_when_read(self, redis_client: redis.Redis) -> None:
        ids = add(redis_client, 5)
        index = ReadIndex(redis_client, STREAM, ids[1])
        assert index.known is None
        more = add(redis_client, 2)  # added after the start: past the goal
        entries = read_after(redis_client, ids[1], count=2)
        index.read(entries)
        assert index.known is None  # not yet at the last entry that existed at start
        index.read(read_after(redis_client, entries[-1][0].decode()))
        assert index.known == added(redis_client) == 7
        assert more[-1] == read_after(redis_client, ids[3])[-1][0].decode()

    def test_resuming_at_the_end_knows_at_once(self, redis_client: redis.Redis) -> None:
        ids = add(redis_client, 4)
        assert ReadIndex(redis_client, STREAM, ids[-1]).known == 4

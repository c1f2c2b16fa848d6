"""What every API and gateway process builds once: Redis clients, caches, and the default write key.

Both front doors (the HTTP API and the websocket gateway) validate events,
append them through one coalescing writer, check write keys through one
cache and push back on lag the same way; building those here, from the
settings, keeps their timeouts and bounds in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.appender import StreamAppender
from api.backpressure import Backpressure
from api.logging import log
from state.settings import Settings
from state.validation import EventValidator, limits_from
from state.writekeys import WriteKey, WriteKeyCache, save_write_key

logger = logging.getLogger("attimo.resources")


def redis_client(settings: Settings, *, blocking_reads: bool = False) -> aioredis.Redis:
    """A Redis client with the configured timeouts.

    `blocking_reads` is for pub/sub, whose reads wait for messages by design:
    it gets a connect timeout only.
    """
    timeout = None if blocking_reads else settings.redis_timeout_s
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=timeout,
                                   socket_connect_timeout=settings.redis_timeout_s)


@dataclass
class Resources:
    """One process's shared objects for ingest and reads."""

    settings: Settings
    redis: aioredis.Redis
    write_keys: WriteKeyCache
    appender: StreamAppender
    backpressure: Backpressure
    validator: EventValidator

    async def close(self) -> None:
        """Stop the writer and close the client."""
        await self.appender.close()
        await self.redis.aclose()


async def open_resources(settings: Settings) -> Resources:
    """Build the shared objects and save the default write key (a Redis outage only logs: requests get 503)."""
    client = redis_client(settings)
    resources = Resources(
        settings=settings,
        redis=client,
        write_keys=WriteKeyCache(client, ttl_s=settings.write_key_cache_ttl_s,
                                 negative_ttl_s=settings.write_key_negative_ttl_s,
                                 max_entries=settings.write_key_cache_max),
        appender=StreamAppender(client, settings.stream_shards),
        backpressure=Backpressure(client, settings.stream_shards, settings.max_ingest_lag_s,
                                  check_interval_s=settings.lag_check_interval_s),
        validator=EventValidator(limits_from(settings)),
    )
    try:
        # The dev key: listed as `dev`, and trusting browser identity unless told otherwise (settings).
        await save_write_key(client, WriteKey(settings.write_key, settings.origins, id="dev",
                                              trust_browser_identity=settings.write_key_trusts_identity))
    except (RedisError, OSError) as exc:
        log(logger, logging.ERROR, "cannot save the default write key", error=str(exc))
    return resources

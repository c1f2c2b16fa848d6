"""Versioned live configuration in Redis, and its announcement to the dataflow.

`publish_config` stores the new version under its own key (never
overwritten), makes it current, and appends a control entry with the version
number to every ingest stream. The dataflow reads those entries in stream
order, so each event is processed under the version that was current when
it was ingested, also when it is replayed after a crash.

One window remains: a contact shard switches at the first copy of the
control it meets, so an event appended to another stream just before that
stream's own control can be applied under the new version already.
"""

from __future__ import annotations

from typing import Final, cast

import msgspec
import redis
import redis.asyncio as aioredis

from state import keys
from state.config import ActiveConfig, decode_config, encode_config
from state.streams import CONTROL_FIELD


class ConfigControl(msgspec.Struct, frozen=True, tag="config", tag_field="control"):
    """Control entry: configuration `version` is now in force."""

    version: int


_control_encoder: Final = msgspec.json.Encoder()
_control_decoder: Final = msgspec.json.Decoder(ConfigControl)


def control_payload(version: int) -> bytes:
    """The stream payload announcing `version`."""
    return _control_encoder.encode(ConfigControl(version))


def decode_control(payload: bytes) -> ConfigControl:
    """A control entry's payload → ConfigControl."""
    return _control_decoder.decode(payload)


async def current_config(client: aioredis.Redis) -> ActiveConfig:
    """The configuration in force now (defaults when none was ever published)."""
    version = cast("bytes | None", await client.get(keys.config_current()))
    if version is None:
        return ActiveConfig()
    raw = cast("bytes | None", await client.get(keys.config_version(int(version))))
    return decode_config(raw) if raw else ActiveConfig()


async def publish_config(client: aioredis.Redis, config: ActiveConfig, shards: int) -> ActiveConfig:
    """Store `config` as a new version and announce it on every stream; returns it versioned."""
    version = int(await client.incr(keys.config_sequence()))
    versioned = msgspec.structs.replace(config, version=version)
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.config_version(version), encode_config(versioned))
        pipe.set(keys.config_current(), version)
        for shard in range(shards):
            pipe.xadd(keys.event_stream(shard), {CONTROL_FIELD: control_payload(version)})
        await pipe.execute()
    return versioned


def load_config_version(client: redis.Redis, version: int) -> ActiveConfig:
    """A stored version, for the dataflow (blocking client); defaults for version 0."""
    if version == 0:
        return ActiveConfig()
    raw = cast("bytes | None", client.get(keys.config_version(version)))
    if raw is None:
        raise LookupError(f"configuration version {version} is not stored")
    return decode_config(raw)

"""Is Attimo ready to serve: the checks behind `GET /readyz` and `attimo status`.

Three checks, each reported with why it failed:

- `redis`: Redis answers a PING within the settings' Redis timeout;
- `dataflow_lag`: the oldest event the dataflow has not processed has waited
  less than `ready_max_lag_s` (the age `state.streams.ingest_lag_seconds`
  measures, the one ingest pushes back on);
- `dispatcher`: a dispatcher process reported its stats in the last 5 s
  (`state.process_stats`). `attimo run` always starts one, and without one
  workflow actions (webhooks, e-mails) wait in the outbox unseen, so it is
  required by default; a deployment that delivers no actions sets
  `ATTIMO_READY_REQUIRE_DISPATCHER=false` and the check is skipped.

Both callers read Redis the same way, so the terminal and the load balancer
see the same verdict.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from state.process_stats import ProcessStats, read_process_stats
from state.streams import ingest_lag_seconds

DISPATCHER_PART: Final = "dispatcher"


class Check(msgspec.Struct, frozen=True):
    """One readiness check: passed or not, and what was seen."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False


class Readiness(msgspec.Struct, frozen=True, omit_defaults=True):
    """The verdict (`ready` only when every check passed), each check, the names of those that failed."""

    status: Literal["ready", "not ready"]
    checks: list[Check]
    failed: list[str]
    processes: list[ProcessStats] = []


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def verdict(checks: list[Check], processes: list[ProcessStats]) -> Readiness:
    """Ready when no check failed."""
    failed = [c.name for c in checks if not c.ok]
    return Readiness("not ready" if failed else "ready", checks, failed, processes)


async def check_readiness(client: aioredis.Redis, *, shards: int, max_lag_s: float, require_dispatcher: bool,
                          timeout_s: float) -> Readiness:
    """Run the checks against Redis; a Redis that does not answer fails all three (each says so)."""
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError) as exc:
        why = f"Redis does not answer: {_describe(exc)}"
        return verdict([Check("redis", False, why), Check("dataflow_lag", False, "unknown: " + why),
                        Check("dispatcher", not require_dispatcher, "unknown: " + why,
                              skipped=not require_dispatcher)], [])
    checks = [Check("redis", True, "answers")]
    try:
        lag = await asyncio.wait_for(ingest_lag_seconds(client, shards), timeout_s)
        processes = await asyncio.wait_for(read_process_stats(client), timeout_s)
    except (RedisError, OSError, TimeoutError) as exc:
        why = f"Redis failed while reading: {_describe(exc)}"
        return verdict([Check("redis", False, why), Check("dataflow_lag", False, "unknown: " + why),
                        Check("dispatcher", not require_dispatcher, "unknown: " + why,
                              skipped=not require_dispatcher)], [])
    if lag < max_lag_s:
        checks.append(Check("dataflow_lag", True, f"{lag:.2f} s behind (limit {max_lag_s:g} s)"))
    else:
        checks.append(Check("dataflow_lag", False, f"{lag:.2f} s behind, limit {max_lag_s:g} s"))
    dispatchers = [p.pid for p in processes if p.part == DISPATCHER_PART]
    if not require_dispatcher:
        checks.append(Check("dispatcher", True, "not required (ATTIMO_READY_REQUIRE_DISPATCHER=false)",
                            skipped=True))
    elif dispatchers:
        checks.append(Check("dispatcher", True, "alive: pid " + ", ".join(map(str, dispatchers))))
    else:
        checks.append(Check("dispatcher", False, "no dispatcher process reported in the last 5 s"))
    return verdict(checks, processes)

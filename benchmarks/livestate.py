"""Throughput and state size of the per-contact state with every live feature on.

For each size, the same pre-loaded backlog is drained twice
by the real dataflow process (1 worker, recovery on as in production): once
under the default configuration and once under `livestate_config.everything_on`
(scoring modes, absence rules, decay, tags, eight segments), each published
as the admin API does before the events, so the ratio of the two is the cost
of the live-state features.

The backlog is a week of shop traffic that ended over an hour ago, as if it had
been received live (each event's `received_at` is its own time): replayed
history the windows, absence rules and segments must all take into account,
not late arrivals they would ignore. Entries are validated and encoded once,
exactly as the gateway appends them, and the same entries are loaded for
both configurations. The drain ends when one sentinel contact per shard has
a profile (a shard is processed in order).

Before a number is reported, every contact's counters must equal the
generator's tally and the `buyers` segment must hold exactly the contacts
the tally says have ordered. Then, per run:

- events/s and dataflow CPU seconds per million events over the drain;
- dataflow RSS growth per contact (against the same dataflow code started
  on the same, still empty, Redis);
- Redis bytes per contact (`state_size.redis_breakdown`, and `INFO
  used_memory` growth once the consumed event streams are deleted);
- the recovery store after the next committed epoch, then a clean stop
  (`state_size.recovery_store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import redis

from benchmarks import state_size
from benchmarks.backlog import sentinel_events, timed_drain
from benchmarks.livestate_config import BUYERS, everything_on, publish, summary
from benchmarks.progress import Progress, note
from benchmarks.shoppers import ShopperModel, Tally, encode
from benchmarks.stack import SHARDS, Stack, rss_bytes
from state import keys
from state.config import ActiveConfig
from state.streams import ENTRY_FIELD, encode_entry, group_by_shard
from state.validation import EventValidator, Limits

CONFIGS = ("default", "everything_on")
# One snapshot interval (10 s by default) and the commit after it, with room to spare.
COMMIT_TIMEOUT_S = 40.0


FRAME = 20


@dataclass
class LiveBacklog:
    """Stream entries ready to append (shard, payload), and what they must add up to."""

    entries: list[tuple[int, bytes]]
    tally: Tally
    sentinels: list[str]

    @property
    def events(self) -> int:
        return self.tally.events


def build_backlog(seed: int, visitors: int) -> LiveBacklog:
    """A week of `visitors` shoppers, ended over an hour ago, each event received when it happened."""
    model = ShopperModel(seed, prefix="ls", now=datetime.now(UTC) - timedelta(days=1))
    validator = EventValidator(Limits())
    now = datetime.now(UTC)
    tally = Tally()
    entries: list[tuple[int, bytes]] = []
    frame: list[Any] = []

    def flush() -> None:
        for shard, group in group_by_shard(frame, SHARDS).items():
            entries.append((shard, encode_entry(group)))
        frame.clear()

    for session in model.sessions(visitors):
        for raw in (*session.browser, *session.server):
            tally.add(raw)
            event = validator.validate_one(encode(raw), now)
            frame.append(msgspec.structs.replace(event, received_at=event.timestamp))
            if len(frame) == FRAME:
                flush()
    extra, sentinels = sentinel_events("ls-sentinel")
    for raw in extra:
        tally.add(raw)
        frame.append(validator.validate_one(encode(raw), now))
    flush()
    return LiveBacklog(entries, tally, sentinels)


def preload(client: redis.Redis, work: LiveBacklog) -> None:
    """Append the pre-encoded entries, 500 per round trip."""
    with Progress("preload backlog", len(work.entries)) as bar:
        for start in range(0, len(work.entries), 500):
            pipe = client.pipeline(transaction=False)
            for shard, payload in work.entries[start : start + 500]:
                pipe.xadd(keys.event_stream(shard), {ENTRY_FIELD: payload})
            pipe.execute()
            bar.advance(min(500, len(work.entries) - start))


def config_named(name: str) -> ActiveConfig:
    return everything_on() if name == "everything_on" else ActiveConfig()


def expected_buyers(tally: Tally) -> set[str]:
    """Contacts with at least one order, from the generator's own bookkeeping."""
    return {who for who, row in tally.counts.items() if row[4] >= 1}


def _sentinels_done(client: redis.Redis, sentinels: list[str]) -> bool:
    return all(client.mget([keys.contact_profile(s) for s in sentinels]))


def _idle_rss(stack: Stack) -> int:
    """RSS of the dataflow once started and configured, before any contact exists."""
    stack.start_dataflow(1, 1, tag="-idle")
    rss = rss_bytes(stack.pids()["dataflow"][0])
    stack.stop("dataflow")
    client = stack.client()
    client.delete(keys.dataflow_progress(), keys.dataflow_heartbeat())
    return rss


def _buyers_check(client: redis.Redis, tally: Tally, config: str) -> dict[str, Any]:
    """`buyers` members equal the tally's buyers, exactly.

    A visitor who ordered anonymously and then signed up is merged into the
    user's contact and must leave its segments; stale members left behind by
    a merge (a bug this check found once) are counted apart, and fail too.
    """
    if config != "everything_on":
        return {"correct": True, "checked": False}
    want = expected_buyers(tally)
    raw: list[bytes] = client.zrange(keys.segment_members(BUYERS), 0, -1)  # type: ignore[assignment]
    got = {m.decode() for m in raw}
    unexpected = sorted(got - want)
    profiles = client.mget([keys.contact_profile(m) for m in unexpected]) if unexpected else []
    stale = [m for m, p in zip(unexpected, profiles, strict=True) if p is None and m in tally.links]
    wrong = len(unexpected) - len(stale)
    return {
        "correct": not (want - got) and wrong == 0 and not stale,
        "checked": True,
        "expected": len(want),
        "members": len(got),
        "missing": len(want - got),
        "unexpected": wrong,
        "stale_after_merge": len(stale),
        "stale_examples": stale[:3],
    }


def drain(
    directory: Path, work: LiveBacklog, config: str, time_limit_s: float, measure_snapshot: bool
) -> dict[str, Any]:
    """One drain of the backlog under `config`, with its correctness check and state sizes."""
    with Stack(directory) as stack:
        stack.start_redis()
        client = stack.client()
        live = config_named(config)
        version = publish(stack.redis_url, live, SHARDS)
        rss_idle = _idle_rss(stack)
        redis_before = int(client.info("memory")["used_memory"])
        preload(client, work)
        figures = timed_drain(stack, client, f"livestate {config}", work.events, work.sentinels, work.tally,
                              time_limit_s)
        buyers = _buyers_check(client, work.tally, config)
        pid = stack.pids()["dataflow"][0]
        rss_after = rss_bytes(pid)
        contacts = len(work.tally.counts)
        row: dict[str, Any] = {
            "config": config,
            "config_version": version,
            **figures,
            "buyers_check": buyers,
            "dataflow_rss_idle_bytes": rss_idle,
            "dataflow_rss_bytes_per_contact": round((rss_after - rss_idle) / contacts),
        }
        recovery = directory / "data" / "recovery"
        if measure_snapshot:
            try:
                epoch, waited = state_size.wait_for_commit_after(recovery, COMMIT_TIMEOUT_S)
                row["snapshot_wait_s"] = round(waited, 1)
                row["snapshot_epoch"] = epoch
            except TimeoutError as exc:
                row["snapshot_error"] = str(exc)
        stack.stop("dataflow")  # SIGINT: a clean stop
        for shard in range(SHARDS):
            client.delete(keys.event_stream(shard))
        redis_after = int(client.info("memory")["used_memory"])
        segment_ids = [s.id for s in live.segments]
        row["redis"] = {
            "used_memory_bytes_per_contact": round((redis_after - redis_before) / contacts),
            **state_size.redis_breakdown(client, list(work.tally.counts), segment_ids),
        }
        if measure_snapshot and "snapshot_error" not in row:
            row["recovery_store"] = state_size.recovery_store(recovery, contacts)
        return row


def run(workdir: Path, backlogs: list[tuple[int, LiveBacklog]], snapshot_default: bool) -> dict[str, Any]:
    """Both configurations over each backlog; ratios live/default per size."""
    sizes = []
    for visitors, work in backlogs:
        rows = {}
        for config in CONFIGS:
            note(f"livestate: {visitors:,} visitors, {work.events:,} events, {config} configuration …")
            rows[config] = drain(
                workdir / f"livestate-{visitors}-{config}",
                work,
                config,
                time_limit_s=max(90.0, work.events / 3_000),
                measure_snapshot=config == "everything_on" or snapshot_default,
            )
        default, live = rows["default"], rows["everything_on"]
        sizes.append(
            {
                "visitors": visitors,
                "runs": [default, live],
                "throughput_ratio": round(live["events_per_s"] / max(1, default["events_per_s"]), 2),
                "cpu_ratio": round(live["cpu_s_per_m_events"] / max(0.1, default["cpu_s_per_m_events"]), 2),
            }
        )
    return {"config": summary(everything_on()), "sizes": sizes}

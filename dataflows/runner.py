"""Runs the dataflow with Bytewax recovery, as `attimo dataflow` does.

Recovery is on by default: state and stream positions are snapshotted
together every `snapshot_interval_s`, and a restart resumes from the last
committed snapshot and replays the stream after it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from dataflows.flow import build_flow
from dataflows.io.redis_sink import RedisSinkConfig
from dataflows.io.redis_source import StreamSourceConfig
from dataflows.recommendations.capability import configured
from dataflows.recommendations.settings import RecsSettings, recs_settings_from
from dataflows.recovery_scrub import RecoveryScrubber
from dataflows.shard.contact import Registry
from dataflows.shard.dedup import DedupWindow
from dataflows.shard.stages import DEFAULT_REGISTRY, ContactConfig
from state.settings import Settings

log = logging.getLogger(__name__)

RECOVERY_PARTITIONS = 1


def recovery_dir(settings: Settings) -> Path:
    """Where the recovery partitions live."""
    return settings.data_dir / "recovery"


def ensure_recovery_dir(directory: Path, partitions: int = RECOVERY_PARTITIONS) -> None:
    """Create the recovery partitions once; later runs resume from them."""
    if directory.exists() and any(directory.glob("part-*.sqlite3")):
        return
    directory.mkdir(parents=True, exist_ok=True)
    init_db_dir(directory, partitions)


def configs_from(settings: Settings) -> tuple[StreamSourceConfig, ContactConfig, RedisSinkConfig, RecsSettings]:
    """The four parts' configuration, from settings."""
    trim_after = (2 * settings.snapshot_interval_s + settings.backup_interval_s + 1.0
                  if settings.recovery else None)
    recs = recs_settings_from(settings)
    return (
        StreamSourceConfig(redis_url=settings.redis_url, shards=settings.stream_shards,
                           idle_poll_s=settings.idle_poll_ms / 1000, trim_after_s=trim_after,
                           retention_s=settings.event_retention_s,
                           quarantine_max=settings.quarantine_max,
                           quarantine_retention_s=settings.quarantine_retention_s,
                           redis_timeout_s=settings.redis_timeout_s),
        ContactConfig(contact_shards=settings.contact_shards, cart_idle_s=settings.cart_idle_s,
                      event_log_size=settings.event_log_size, track_activity=settings.active_window_s > 0,
                      hot_contacts_per_shard=max(8, settings.hot_contacts // settings.contact_shards),
                      dedup=DedupWindow(settings.dedup_window_s, settings.dedup_max_ids),
                      registry=Registry(configured(DEFAULT_REGISTRY.capabilities, recs))),
        RedisSinkConfig(redis_url=settings.redis_url, quarantine_max=settings.quarantine_max,
                        quarantine_retention_s=settings.quarantine_retention_s,
                        redis_timeout_s=settings.redis_timeout_s, outbox_shards=settings.outbox_shards,
                        active_window_s=settings.active_window_s, stream_shards=settings.stream_shards,
                        dedup_window_s=settings.dedup_window_s),
        recs,
    )


def run_dataflow(
    settings: Settings, process_id: int | None = None, addresses: list[str] | None = None,
) -> None:
    """Run the dataflow until interrupted."""
    flow = build_flow(*configs_from(settings))
    recovery = None
    if settings.recovery:
        directory = recovery_dir(settings)
        ensure_recovery_dir(directory)
        recovery = RecoveryConfig(directory, backup_interval=timedelta(seconds=settings.backup_interval_s))
        # After an erase, old snapshots' bytes are vacuumed out of the store (`recovery_scrub`).
        RecoveryScrubber(settings.redis_url, directory,
                         2 * settings.snapshot_interval_s + settings.backup_interval_s + 1.0).start()
    log.info("dataflow starting", extra={"workers": settings.workers, "recovery": settings.recovery})
    cli_main(flow, workers_per_process=settings.workers, process_id=process_id, addresses=addresses,
             epoch_interval=timedelta(seconds=settings.snapshot_interval_s), recovery_config=recovery)

"""The dataflow's Prometheus metrics (served on `dataflow_metrics_port` + the process index).

Bytewax workers are threads of one process, so one registry (the default)
holds every worker's counts. Everything is counted per batch, never per
event: the source adds a batch's events in one increment, the sink times a
whole batch's pipeline.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

EVENTS: Final = Counter("attimo_dataflow_events",
                        "Events the dataflow read from the ingest streams (to process), by stream shard.",
                        ["shard"])
BATCH_SECONDS: Final = Histogram(
    "attimo_dataflow_batch_seconds",
    "Time of one batch step: `read` a batch from a stream shard, `write` the outputs of a batch to Redis.",
    ["step"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0))
READ_SECONDS: Final = BATCH_SECONDS.labels("read")
WRITE_SECONDS: Final = BATCH_SECONDS.labels("write")
BATCH_SIZE: Final = Histogram("attimo_dataflow_read_batch_events", "Events per batch read from a stream shard.",
                              buckets=(0, 1, 10, 50, 100, 250, 500, 1000, 5000))
STREAM_LAG: Final = Gauge(
    "attimo_dataflow_stream_lag_seconds",
    "Per stream shard: age of the oldest entry of the last batch read (0 when the shard was caught up).",
    ["shard"])
QUARANTINED: Final = Counter("attimo_dataflow_quarantined",
                             "Items a dataflow step could not take and quarantined, by where.", ["stage"])

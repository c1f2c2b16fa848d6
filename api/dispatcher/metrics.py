"""The dispatcher's Prometheus metrics (served on `dispatcher_metrics_port`, default registry).

Outcomes are counted per attempt: `delivered`, `retrying` (failed, another
attempt scheduled) and `dead_lettered` (no attempt left, or a permanent
failure). Two latencies: one attempt's round trip to the receiver, and an
action's whole way from the dataflow creating it to its delivery (retries
included; what a shop's e-mail tool sees).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

OUTCOMES: Final = Counter("attimo_dispatcher_deliveries", "Delivery attempts of workflow actions, by outcome.",
                          ["outcome"])
DELIVERED: Final = OUTCOMES.labels("delivered")
RETRYING: Final = OUTCOMES.labels("retrying")
DEAD_LETTERED: Final = OUTCOMES.labels("dead_lettered")
ATTEMPT_SECONDS: Final = Histogram(
    "attimo_dispatcher_attempt_seconds", "How long one delivery attempt (webhook or e-mail) took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
DELIVERY_LATENCY_SECONDS: Final = Histogram(
    "attimo_dispatcher_delivery_latency_seconds",
    "From the action's creation by the dataflow to its delivery, retries included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0, 86_400.0))

"""`python -m dataflows`: run the Attimo dataflow (what `attimo dataflow` starts).

For a multi-process cluster pass `--process-id` and `--addresses` exactly as
Bytewax's `-i` / `-a` (every process gets the same address list). Each
process serves its Prometheus metrics on `dataflow_metrics_port` plus its
process id (9210, 9211 … by default), so processes on one host do not clash.
"""

from __future__ import annotations

import argparse
import contextlib
import gc

from dataflows.runner import run_dataflow
from state.logs import configure_logging
from state.metrics_server import serve_metrics
from state.process_stats import start_process_reporter
from state.settings import Settings


def main() -> None:
    """Parse the cluster flags, read settings once, run until interrupted."""
    parser = argparse.ArgumentParser(prog="attimo dataflow", description=__doc__)
    parser.add_argument("-i", "--process-id", type=int, default=None)
    parser.add_argument("-a", "--addresses", default=None, help="host:port;host:port …")
    args = parser.parse_args()
    configure_logging("dataflow")
    # Contact state is hundreds of thousands of small objects with no cycles;
    # the default thresholds run a full (generation 2) collection over all of
    # them every few hundred thousand allocations, a pause of tens of ms that
    # made the event → visible p99. Objects alive now are frozen out of
    # collections, and full collections become rare.
    gc.freeze()
    gc.set_threshold(50_000, 50, 1_000)
    addresses = args.addresses.split(";") if args.addresses else None
    settings = Settings()
    if settings.dataflow_metrics_port:
        serve_metrics("dataflow", settings.host, settings.dataflow_metrics_port + (args.process_id or 0))
    start_process_reporter("dataflow", settings.redis_url)
    with contextlib.suppress(KeyboardInterrupt):
        run_dataflow(settings, process_id=args.process_id, addresses=addresses)


if __name__ == "__main__":
    main()

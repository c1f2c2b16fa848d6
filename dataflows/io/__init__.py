"""The dataflow's edges: Redis Streams in (a resumable source), Redis out (an idempotent sink), and the
items that travel between the stages and to the sink."""

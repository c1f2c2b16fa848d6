"""Load generator and end-to-end / per-stage benchmarks (`attimo bench`, `attimo demo`)."""

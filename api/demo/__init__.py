"""`attimo demo`: simulated shoppers that make a running Attimo live to look at.

`model` generates seeded, tracker-exact shopping sessions (the benchmarks
send the same ones); `shoppers` plays them at a human pace over real
websockets and the Segment HTTP API.
"""

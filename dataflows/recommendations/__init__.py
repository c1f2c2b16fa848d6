"""Streaming item-to-item recommendations: the products stage and what feeds it.

- `capability`: per contact, the products it viewed, added and bought
  lately; each product that joins a session or a basket becomes an
  `Interaction` with the products already there (bounded per contact).
- `stage`, `shard`: the products stage, keyed by product shard; every shard
  hears every interaction and catalog change, keeps every product's
  popularity and card, and the co-occurrence rows of its own products.
- `cooccurrence`, `llr`: recency-weighted co-occurrence counts and the
  log-likelihood ratio that keeps ubiquitous products from topping lists.
- `cards`, `documents`: the catalog copy and the neighbour / trending
  documents (`state.recommendations`) the decisions API composes strips from.
- `batch`: the same model recomputed from scratch, the reference the stream
  is tested and benchmarked against.
"""

"""The dispatcher: delivers the actions workflows put in the outbox, exactly once per receiver, in order per contact.

`attimo dispatcher` runs one process (`service.run_dispatcher`); `attimo run`
starts and supervises one; more can run anywhere, sharing the outbox shards
through leases (`leases`). Each held shard is delivered by a `shard.ShardWorker`:
per-contact queues, retries on a schedule with jitter (`schedule`), state
persisted before and after every attempt (`ledger`), dead letters
(`dead_letters`). Actions go out through one `senders.Sender` per kind:
webhooks signed as Standard Webhooks (`webhook`, `signing`, with the SSRF
guard of `addresses` and the endpoints of `endpoints`), e-mail through
`api.email`. What it keeps in Redis is described in `records`.
"""

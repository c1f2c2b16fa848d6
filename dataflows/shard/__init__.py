"""The contact-shard machinery: contacts kept per virtual shard, changed only through a guard.

`stages` holds the two Bytewax operators (visitors, known contacts); `shard`
the guarded `ContactShard` both use; `book` the store of committed contacts
and their timers; `contact` the state type built from the capability
registry; `emitter` what a changed contact outputs; `identity` merging a
visitor into a contact; `dedup` counting every message once.
"""

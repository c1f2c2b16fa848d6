"""Writing decision documents: a contact's under each of its ids, never a visitor's over a known contact's.

The dataflow writes a contact's `DecisionDoc` under its own id and each of
its anonymous ids (`keys.decision_doc`), so the read path finds it in one
GET whatever id the page knows. When a visitor logs in, the visitor stage
writes the visitor's last document and the contact stage, moments later,
the known contact's — under the same anonymous id. The two writes may
reach Redis in either order (they leave through one sink in one batch, or
through two workers), so a visitor's write goes through a script that
leaves a known contact's document alone: an anonymous id once linked to a
user stays linked, and its events are the contact's from then on. A known
contact's document (it has a `user_id`) is simply overwritten, without
expiry; a visitor's expires about when the visitor would be purged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from state import keys

KNOWN_MARK: Final = '"user_id":'
"""How a stored known contact's document is told from a visitor's: only it has a user id (strings in it are
JSON-escaped, so no text inside can contain this with its quotes bare)."""

# KEYS: the document key. ARGV: the visitor's document, its TTL in seconds.
VISITOR_WRITE: Final = f"""
local current = redis.call('GET', KEYS[1])
if current and string.find(current, '{KNOWN_MARK}', 1, true) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def queue_doc_write(pipe: Any, ids: Iterable[str], doc_json: bytes, ttl_s: float | None) -> None:
    """Add the writes of one document under each of `ids` to a pipeline; `ttl_s` marks a visitor's."""
    if ttl_s is None:
        for any_id in ids:
            pipe.set(keys.decision_doc(any_id), doc_json)
        return
    ttl = max(1, int(ttl_s))
    for any_id in ids:
        pipe.eval(VISITOR_WRITE, 1, keys.decision_doc(any_id), doc_json, ttl)

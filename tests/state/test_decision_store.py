"""Decision documents in Redis: under every id, visitors' expiring, never a visitor's over a known contact's."""

from __future__ import annotations

import redis

from dataflows.io.outputs import DecisionDocWrite
from dataflows.io.redis_sink import RedisSink, RedisSinkConfig
from state import keys
from state.decision_store import queue_doc_write
from state.decisions import DecisionDoc, PopupContent, PopupDecision, decode_doc, encode_doc
from tests.helpers import RedisServer

VISITOR = encode_doc(DecisionDoc(contact_id="anon-1", popups=[PopupDecision(
    campaign="c", variant="a", layout="bar", triggers=[],
    content=PopupContent(title='a title with "user_id": in it'))]))
KNOWN = encode_doc(DecisionDoc(contact_id="u1", user_id="u1"))


def write(client: redis.Redis, ids: tuple[str, ...], doc: bytes, ttl_s: float | None) -> None:
    pipe = client.pipeline(transaction=False)
    queue_doc_write(pipe, ids, doc, ttl_s)
    pipe.execute()


class TestDecisionStore:
    """Where documents go and which write wins."""

    def test_a_known_contacts_document_goes_under_every_id_without_expiry(self, redis_client: redis.Redis) -> None:
        write(redis_client, ("anon-1",), VISITOR, 3600)
        assert 0 < redis_client.ttl(keys.decision_doc("anon-1")) <= 3600
        write(redis_client, ("u1", "anon-1"), KNOWN, None)
        for any_id in ("u1", "anon-1"):
            assert decode_doc(redis_client.get(keys.decision_doc(any_id))).user_id == "u1"  # type: ignore[arg-type]
            assert redis_client.ttl(keys.decision_doc(any_id)) == -1

    def test_a_visitors_late_write_leaves_the_known_contacts_document(self, redis_client: redis.Redis) -> None:
        """The login race: the contact stage's write lands first, the visitor stage's after it."""
        write(redis_client, ("u1", "anon-1"), KNOWN, None)
        write(redis_client, ("anon-1",), VISITOR, 3600)
        assert decode_doc(redis_client.get(keys.decision_doc("anon-1"))).user_id == "u1"  # type: ignore[arg-type]

    def test_a_visitor_replaces_its_own_document_whatever_its_text_says(self, redis_client: redis.Redis) -> None:
        write(redis_client, ("anon-1",), VISITOR, 3600)
        newer = encode_doc(DecisionDoc(contact_id="anon-1"))
        write(redis_client, ("anon-1",), newer, 60)
        assert redis_client.get(keys.decision_doc("anon-1")) == newer

    def test_the_sink_writes_both_in_one_batch_in_either_order(self, redis_server: RedisServer) -> None:
        sink = RedisSink(RedisSinkConfig(redis_server.url)).build("redis", 0, 1)
        known = DecisionDocWrite(("u1", "anon-1"), KNOWN)
        visitor = DecisionDocWrite(("anon-1",), VISITOR, 3600.0)
        client = redis_server.client()
        for batch in ([("0", known), ("1", visitor)], [("1", visitor), ("0", known)]):
            client.flushall()
            sink.write_batch(batch)  # type: ignore[arg-type]
            assert decode_doc(client.get(keys.decision_doc("anon-1"))).user_id == "u1"  # type: ignore[arg-type]
        sink.close()

"""The read script picks exactly the neighbour documents `state.recommendations.read_ids` names.

The rule lives in Python (the products stage's module) and is done again in
Lua inside Redis (one round trip); generated seeds keep the two equal.
"""

from __future__ import annotations

import hashlib

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.decisions.read import SCRIPT, parse_reply, script_args
from state import keys
from state.decisions import DecisionDoc, Seeds, encode_doc
from state.recommendations import read_ids

SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
product_ids = st.one_of(st.sampled_from(["p1", "p2", "p3", "p4", "p5", "p6"]),
                        st.text(min_size=1, max_size=12))
seed_lists = st.lists(product_ids, max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(viewed=seed_lists, cart=seed_lists, bought=seed_lists, product=st.one_of(st.none(), product_ids))
def test_the_script_reads_the_documents_read_ids_names(redis_client: redis.Redis, viewed: list[str],
                                                         cart: list[str], bought: list[str],
                                                         product: str | None) -> None:
    """Same products, same order, whatever the seeds (duplicates, any text, more than the limits)."""
    seeds = Seeds(viewed=viewed, cart=cart, bought=bought)
    redis_client.set(keys.decision_doc("c"), encode_doc(DecisionDoc(contact_id="c", seeds=seeds)))
    redis_client.script_load(SCRIPT)
    reply = parse_reply(redis_client.evalsha(SHA, 0, *script_args("c", product)))
    assert reply.products == read_ids(seeds, product)

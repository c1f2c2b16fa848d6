"""The fast path's query parsing is `dict(parse_qsl(...))`, only quicker for queries with nothing to decode."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from api.decisions_fast import parse_query

pieces = st.sampled_from(["key", "sig", "product", "=", "&", "&&", "%2F", "%", "+", "a", "é", "%C3%A9", ";", " ", ""])


@settings(max_examples=500, deadline=None)
@given(parts=st.lists(pieces, max_size=12))
def test_parse_query_is_parse_qsl(parts: list[str]) -> None:
    """Same parameters, same values, whatever the query (blank values, repeats, escapes, no "=")."""
    raw = "".join(parts).encode("utf-8")
    assert parse_query(raw) == dict(parse_qsl(raw.decode("latin-1")))


def test_a_usual_query() -> None:
    assert parse_query(b"key=wk-1&sig=ab12&product=") == {"key": "wk-1", "sig": "ab12"}
    assert parse_query(b"") == {}

"""Settings refuse values a process could not run with, at start, naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from state.settings import Settings


@pytest.mark.parametrize("name", ["stream_shards", "contact_shards", "outbox_shards", "product_shards"])
def test_a_shard_count_below_one_is_refused_at_start(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ATTIMO_PRODUCT_SHARDS=0` would leave the products stage no shard to route to: refused, by name."""
    monkeypatch.setenv(f"ATTIMO_{name.upper()}", "0")
    with pytest.raises(ValidationError, match=name):
        Settings()
    monkeypatch.setenv(f"ATTIMO_{name.upper()}", "1")
    assert getattr(Settings(), name) == 1

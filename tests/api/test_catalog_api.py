"""Admin catalog API: bulk upsert and delete, paging, one product, and what reaches the dataflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from state import keys
from state.catalog import LearnedFields
from state.catalog_store import LEARNED, learned_json, queue_learned
from state.events import CatalogChanged
from state.settings import Settings
from state.streams import ENTRY_FIELD, decode_entry
from tests.helpers import RedisServer, free_port

TOKEN = "catalog-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SHARDS = 2


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    app = create_app(Settings(redis_url=redis_server.url, admin_token=TOKEN, write_key="wk-catalog",
                              api_port=free_port(), rfm_refresh_s=0, stream_shards=SHARDS))
    with TestClient(app) as test_client:
        yield test_client


def product(pid: str, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "name": f"Product {pid}", **fields}


def upsert(client: TestClient, *products: dict[str, Any]) -> int:
    answer = client.post("/v1/admin/catalog/products", json={"products": list(products)}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["upserted"])


def changes(store: redis.Redis) -> list[CatalogChanged]:
    out: list[CatalogChanged] = []
    for shard in range(SHARDS):
        for _, fields in store.xrange(keys.event_stream(shard)):
            out += [e for e in decode_entry(fields[ENTRY_FIELD]) if isinstance(e, CatalogChanged)]
    return out


class TestUpsert:
    """Bulk upsert stores at once, replaces whole records, and tells the dataflow."""

    def test_upserted_products_read_back_and_reach_the_stream(self, client: TestClient,
                                                              redis_client: redis.Redis) -> None:
        assert upsert(client, product("a", price=3.5, category="mugs"), product("b", in_stock=False)) == 2
        got = client.get("/v1/admin/catalog/products/a", headers=ADMIN).json()
        assert got == {"product": {"id": "a", "name": "Product a", "category": "mugs", "price": 3.5},
                       "source": "admin"}
        assert [(c.product_id, c.product.in_stock if c.product else None) for c in changes(redis_client)] == [
            ("a", True), ("b", False)]

    def test_an_id_sent_twice_counts_once_and_the_last_wins(self, client: TestClient) -> None:
        assert upsert(client, product("a", price=1.0), product("a", price=2.0)) == 1
        assert client.get("/v1/admin/catalog/products/a", headers=ADMIN).json()["product"]["price"] == 2.0

    @pytest.mark.parametrize("body", [
        {"products": []},
        {"products": [{"id": "a"}]},
        {"products": [{"id": "a", "name": "x", "image": "javascript:alert(1)"}]},
        {"products": [{"id": "a", "name": "x", "price": -1}]},
        {"products": [{"id": f"p{i}", "name": "x"} for i in range(1001)]},
        {"items": []},
    ])
    def test_invalid_bodies_are_422_and_store_nothing(self, client: TestClient, redis_client: redis.Redis,
                                                      body: dict[str, Any]) -> None:
        answer = client.post("/v1/admin/catalog/products", json=body, headers=ADMIN)
        assert answer.status_code == 422 and answer.json()["success"] is False
        assert redis_client.zcard(keys.catalog_index()) == 0 and changes(redis_client) == []

    def test_a_thousand_products_in_one_call(self, client: TestClient) -> None:
        assert upsert(client, *(product(f"p{i:04d}") for i in range(1000))) == 1000

    def test_admin_routes_need_the_token(self, client: TestClient) -> None:
        assert client.post("/v1/admin/catalog/products", json={"products": [product("a")]}).status_code == 401
        assert client.get("/v1/admin/catalog/products", headers={"Authorization": "Bearer x"}).status_code == 401


class TestListing:
    """Pages by id with a cursor; learned products are listed with their source."""

    def test_pages_cover_the_catalog_once_in_id_order(self, client: TestClient) -> None:
        upsert(client, *(product(f"p{i:03d}") for i in range(25)))
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/admin/catalog/products", params=params, headers=ADMIN).json()
            assert page["count"] == 25
            seen += [row["product"]["id"] for row in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"p{i:03d}" for i in range(25)]

    def test_learned_fields_fill_gaps_but_never_override_admin_fields(self, client: TestClient,
                                                                      redis_client: redis.Redis) -> None:
        upsert(client, product("a", price=10.0))
        pipe = redis_client.pipeline()
        queue_learned(pipe, "a", learned_json(LearnedFields(name="From events", price=1.0, category="mugs")))
        queue_learned(pipe, "only-events", learned_json(LearnedFields(name="Seen", price=2.0)))
        pipe.execute()
        page = client.get("/v1/admin/catalog/products", headers=ADMIN).json()
        rows = {row["product"]["id"]: row for row in page["data"]}
        assert rows["a"]["product"] == {"id": "a", "name": "Product a", "price": 10.0, "category": "mugs"}
        assert rows["a"]["source"] == "admin"
        assert rows["only-events"]["source"] == "events" and rows["only-events"]["product"]["name"] == "Seen"

    def test_an_id_no_product_can_have_is_422_for_get_as_for_delete(self, client: TestClient) -> None:
        """Over 200 characters: refused the same way by both routes of one product (GET said 404)."""
        long_id = "p" * 201
        for method in ("GET", "DELETE"):
            answer = client.request(method, f"/v1/admin/catalog/products/{long_id}", headers=ADMIN)
            assert answer.status_code == 422 and "product id" in answer.json()["error"], method

    def test_a_bad_cursor_or_limit_is_422(self, client: TestClient) -> None:
        assert client.get("/v1/admin/catalog/products", params={"limit": 0}, headers=ADMIN).status_code == 422
        assert client.get("/v1/admin/catalog/products", params={"cursor": "a\nb"}, headers=ADMIN).status_code == 422


class TestDelete:
    """Deletes forget both sources, tell the dataflow, and say how many existed."""

    def test_bulk_delete(self, client: TestClient, redis_client: redis.Redis) -> None:
        upsert(client, product("a"), product("b"))
        answer = client.post("/v1/admin/catalog/products/delete", json={"ids": ["a", "zzz"]}, headers=ADMIN)
        assert answer.json() == {"deleted": 1}
        assert client.get("/v1/admin/catalog/products/a", headers=ADMIN).status_code == 404
        assert [row["product"]["id"] for row in client.get("/v1/admin/catalog/products",
                                                           headers=ADMIN).json()["data"]] == ["b"]
        assert [(c.product_id, c.product) for c in changes(redis_client)][-2:] == [("a", None), ("zzz", None)]

    def test_delete_one(self, client: TestClient) -> None:
        upsert(client, product("a/b"))
        assert client.delete("/v1/admin/catalog/products/a/b", headers=ADMIN).status_code == 204
        assert client.delete("/v1/admin/catalog/products/a/b", headers=ADMIN).status_code == 404

    def test_forgetting_learned_fields_keeps_a_product_upserted_meanwhile(self, client: TestClient,
                                                                          redis_client: redis.Redis) -> None:
        """The dataflow forgets a deleted product's learned fields; a fresh admin record survives that."""
        upsert(client, product("a"))
        redis_client.hset(keys.product("a"), LEARNED, learned_json(LearnedFields(name="x")))
        pipe = redis_client.pipeline()
        queue_learned(pipe, "a", None)
        pipe.execute()
        assert client.get("/v1/admin/catalog/products/a", headers=ADMIN).json()["product"]["name"] == "Product a"
        redis_client.delete(keys.product("a"))
        redis_client.hset(keys.product("a"), LEARNED, learned_json(LearnedFields(name="x")))
        pipe = redis_client.pipeline()
        queue_learned(pipe, "a", None)
        pipe.execute()
        assert redis_client.zscore(keys.catalog_index(), "a") is None

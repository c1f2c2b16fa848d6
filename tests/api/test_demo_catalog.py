"""The demo shop's catalog goes through the catalog admin API, as a shop's back end would send it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.demo.catalog_load import demo_products, load
from api.demo_shop.catalog import PRODUCTS
from state.catalog import Product
from state.settings import Settings
from tests.helpers import RedisServer, free_port

TOKEN = "demo-admin"


class TestDemoCatalog:
    """Every demo product is a valid catalog product; loading is one bulk upsert with the admin token."""

    def test_the_demo_products_are_valid_catalog_products_linking_into_the_shop(self) -> None:
        products = msgspec.convert(demo_products("http://127.0.0.1:8000/"), list[Product])
        assert [p.id for p in products] == [p.product_id for p in PRODUCTS]
        assert all(p.url == f"http://127.0.0.1:8000/product/{p.id}" for p in products)

    def test_the_admin_api_takes_the_demo_catalog(self, redis_server: RedisServer) -> None:
        app = create_app(Settings(redis_url=redis_server.url, admin_token=TOKEN, write_key="wk-demo",
                                  api_port=free_port(), rfm_refresh_s=0))
        with TestClient(app) as client:
            answer = client.post("/v1/admin/catalog/products", json={"products": demo_products("http://shop")},
                                 headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.json() == {"upserted": len(PRODUCTS)}
            listed = client.get("/v1/admin/catalog/products", headers={"Authorization": f"Bearer {TOKEN}"})
            assert listed.json()["count"] == len(PRODUCTS)

    def test_load_posts_the_catalog_with_the_admin_token(self, received: list[dict[str, Any]],
                                                         api_url: str) -> None:
        assert load(api_url, TOKEN) == len(PRODUCTS)
        [request] = received
        assert request["path"] == "/v1/admin/catalog/products"
        assert request["authorization"] == f"Bearer {TOKEN}"
        assert len(request["body"]["products"]) == len(PRODUCTS)


@pytest.fixture
def received() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def api_url(received: list[dict[str, Any]]) -> Iterator[str]:
    """A stand-in for the API that records what it was sent and answers as the catalog route does."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "authorization": self.headers["Authorization"], "body": body})
            answer = json.dumps({"upserted": len(body["products"])}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()

"""Admin: the product catalog — bulk upsert and delete, paged listing, one product.

What strips show about a product (name, price, image, link, stock) comes
from here, with gaps filled from what `Product Viewed` / `Product Added`
events said (never overriding a field set here). A change is stored at once
(a read after a write sees it) and appended to the ingest stream for the
dataflow's products stage, which rewrites every recommendation document
listing the product within a second: an out-of-stock product leaves every
strip, a renamed one is renamed everywhere.

Listing pages through products in id order; pass `next_cursor` back as
`cursor`. Products known only from events are listed too (`source:
"events"`).
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from fastapi import APIRouter, Query, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import NotFoundError
from api.models import ErrorBody
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, convert, decode, json_response
from state.catalog import CatalogProduct, Product, ProductId
from state.catalog_store import count_products, delete_products, get_product, page_products, upsert_products

router = APIRouter(prefix="/v1/admin/catalog", tags=["admin: catalog"])

MAX_PRODUCTS_PER_CALL: Final = 1000
MAX_PAGE: Final = 1000
_INVALID: Final[Responses] = {422: response(ErrorBody, "Invalid body, id or cursor; the message names the field.")}
_NO_PRODUCT: Final[Responses] = {404: response(ErrorBody, "No such product.")}


class ProductsBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Products to create or replace (a product's admin record is replaced whole)."""

    products: Annotated[list[Product], msgspec.Meta(min_length=1, max_length=MAX_PRODUCTS_PER_CALL)]


class DeleteBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Ids of products to delete."""

    ids: Annotated[list[ProductId], msgspec.Meta(min_length=1, max_length=MAX_PRODUCTS_PER_CALL)]


class Upserted(msgspec.Struct, frozen=True):
    """How many products were stored (an id sent twice counts once: the last one wins)."""

    upserted: int


class Deleted(msgspec.Struct, frozen=True):
    """How many of the ids were in the catalog (all are forgotten, and never learned again from events)."""

    deleted: int


class ProductsPage(msgspec.Struct, frozen=True):
    """A page of products in id order; `count` is the whole catalog; pass `next_cursor` back as `cursor`."""

    data: list[CatalogProduct]
    count: int
    next_cursor: str | None


@router.post("/products", response_class=Response, openapi_extra=request_body(ProductsBody),
             responses={200: response(Upserted, "Stored; recommendation documents follow within a second."),
                        **ADMIN_ERRORS, **_INVALID})
async def upsert(request: Request, _admin: AdminDep, settings: SettingsDep, client: RedisDep) -> Response:
    """Create or replace up to 1 000 products: `{"products": [{"id", "name", …}]}` → `{"upserted": n}`."""
    body = decode(await request.body(), ProductsBody)
    last = {p.id: p for p in body.products}
    stored = await upsert_products(client, list(last.values()), settings.stream_shards)
    return json_response(Upserted(stored))


@router.post("/products/delete", response_class=Response, openapi_extra=request_body(DeleteBody),
             responses={200: response(Deleted, "Deleted."), **ADMIN_ERRORS, **_INVALID})
async def delete_many(request: Request, _admin: AdminDep, settings: SettingsDep, client: RedisDep) -> Response:
    """Delete up to 1 000 products by id: `{"ids": [...]}` → `{"deleted": n}` (those that existed)."""
    body = decode(await request.body(), DeleteBody)
    gone = await delete_products(client, list(dict.fromkeys(body.ids)), settings.stream_shards)
    return json_response(Deleted(len(gone)))


@router.get("/products", response_class=Response,
            responses={200: response(ProductsPage, "A page of products."), **ADMIN_ERRORS, **_INVALID})
async def list_products(
    _admin: AdminDep, client: RedisDep, cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    """Products in id order: `{"data": [{"product", "source", "learned"?}], "count": n, "next_cursor": …}`."""
    after = convert(cursor, ProductId, "cursor") if cursor else None
    products, next_cursor = await page_products(client, after, limit)
    return json_response(ProductsPage(products, await count_products(client), next_cursor))


@router.get("/products/{product_id:path}", response_class=Response,
            responses={200: response(CatalogProduct, "The product."), **ADMIN_ERRORS, **_NO_PRODUCT})
async def get_one(product_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """One product as strips show it, and where its fields came from (an id no product can have is 422)."""
    found = await get_product(client, convert(product_id, ProductId, "product id"))
    if found is None:
        raise NotFoundError(f"no product {product_id!r}")
    return json_response(found)


@router.delete("/products/{product_id:path}", status_code=204, response_class=Response,
               responses={204: {"description": "Deleted."}, **ADMIN_ERRORS, **_NO_PRODUCT})
async def delete_one(product_id: str, _admin: AdminDep, settings: SettingsDep, client: RedisDep) -> Response:
    """Delete one product."""
    pid = convert(product_id, ProductId, "product id")
    if not await delete_products(client, [pid], settings.stream_shards):
        raise NotFoundError(f"no product {product_id!r}")
    return Response(status_code=204)

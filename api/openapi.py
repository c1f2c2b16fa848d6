"""Documenting msgspec bodies in FastAPI's OpenAPI: `/docs` shows every request and response schema.

Routes encode with msgspec (FastAPI's pydantic path would cost CPU on every
request and a second model per type), so FastAPI cannot see their schemas.
`response` and `request_body` describe a body by its msgspec type with a
`$ref`; `install` adds the referenced types' JSON schemas (from
`msgspec.json.schema_components`) to the app's OpenAPI components.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
from fastapi import FastAPI

REF: Final = "#/components/schemas/{name}"
_documented: dict[str, Any] = {}

Responses = dict[int | str, dict[str, Any]]


def _schema(kind: Any) -> dict[str, Any]:
    """A schema for `kind` whose struct types are `$ref`s to components."""
    (schema,), _ = msgspec.json.schema_components([kind], ref_template=REF)
    _documented[repr(kind)] = kind
    return schema


def response(kind: Any, description: str, *alternatives: Any) -> dict[str, Any]:
    """One `responses=` entry for a JSON body of type `kind` (or one of `alternatives`)."""
    schema = _schema(kind) if not alternatives else {"oneOf": [_schema(k) for k in (kind, *alternatives)]}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def request_body(kind: Any) -> dict[str, Any]:
    """`openapi_extra=` for a route that reads a JSON body of type `kind` itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _schema(kind)}}}}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` include the schemas of every type described above."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        _, components = msgspec.json.schema_components(list(_documented.values()), ref_template=REF)
        spec.setdefault("components", {}).setdefault("schemas", {}).update(components)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]

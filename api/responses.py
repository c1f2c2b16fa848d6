"""Encoding answers: JSON bodies by msgspec, and the one error shape every route uses.

Every error, from any route — an `AttimoError` raised by a route, a Redis
outage, FastAPI's own request validation, an unknown path, a bug — is
answered as `api.models.ErrorBody`, `{"success": false, "error": "…"}`, with
the status `api.errors.status_for` gives it.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from fastapi import Response

from api.errors import InvalidBodyError
from api.models import ErrorBody
from api.openapi import Responses, response

T = TypeVar("T")
_encoder: Final = msgspec.json.Encoder()

ADMIN_ERRORS: Final[Responses] = {401: response(ErrorBody, "Admin token missing or wrong.")}
WRITE_ERRORS: Final[Responses] = {
    **ADMIN_ERRORS,
    412: response(ErrorBody, "`If-Match` names an older version."),
    422: response(ErrorBody, "Invalid body; the message names the field."),
}


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by msgspec (Structs, datetimes and all)."""
    return Response(_encoder.encode(content), status_code=status, media_type="application/json",
                    headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The API's one error shape."""
    return json_response(ErrorBody(message), status, headers)


def decode(raw: bytes, kind: type[T]) -> T:
    """Decode a JSON body as `kind`; InvalidBodyError (→ 422) carries msgspec's message."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise InvalidBodyError(str(exc)) from exc
    except RecursionError as exc:
        raise InvalidBodyError("body is nested too deeply") from exc


def convert(value: Any, kind: type[T], what: str) -> T:
    """A path or query value as `kind` (an `Identifier` …); InvalidBodyError naming `what`."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise InvalidBodyError(f"{what} {value!r}: {exc}") from exc

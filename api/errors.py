"""Errors of the API layer, and the one place that maps every error to a status.

API errors sit under the shared `AttimoError` root, so a handler catches the
shared layer's errors (bad batch, unknown key …) and ours alike. The HTTP
exception handlers and the gateway's close codes both read the tables below,
so a given failure means the same thing on every transport.
"""

from __future__ import annotations

from typing import Final

from state.errors import (
    AttimoError,
    BatchTooLargeError,
    InvalidBatchError,
    InvalidEventError,
    OriginNotAllowedError,
    StoreError,
    UnknownWriteKeyError,
)


class ApiError(AttimoError):
    """Root of the errors raised by the API layer itself."""


class MissingWriteKeyError(UnknownWriteKeyError):
    """No write key was given (neither Basic auth, body, query nor header)."""


class AdminAuthError(ApiError):
    """The admin bearer token is missing or wrong."""


class ScopeError(ApiError):
    """The admin token (or the session it opened) works but lacks the scope the route needs (→ 403)."""


class IdentityRequiredError(ApiError):
    """Decisions of a signed-in user were asked for without the user id's signature (`sig`)."""


class InvalidSignatureError(ApiError):
    """The `sig` given is not the user id's signature under any configured identity secret."""


class NotFoundError(ApiError):
    """The requested resource does not exist."""


class InvalidBodyError(ApiError):
    """A request body, path or query value that cannot be used; the message names the field (→ 422)."""


class PreconditionFailedError(ApiError):
    """`If-Match` names another version than the one in force (→ 412)."""


class UnsupportedEncodingError(ApiError):
    """The body's Content-Encoding is not one we decode."""


class OverloadedError(ApiError):
    """The dataflow lags too far behind; the client should retry later."""

    def __init__(self, lag_s: float, retry_after_s: int) -> None:
        super().__init__(f"ingest is overloaded (dataflow lag {lag_s:.1f} s); retry later")
        self.lag_s = lag_s
        self.retry_after_s = retry_after_s


class RateLimitedError(ApiError):
    """A write key or a client IP sent more than its rate limit allows (`api.rate_limits`); retry later."""

    def __init__(self, limit: str, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s


# Most specific first: `status_for` returns the first class that matches.
HTTP_STATUS: Final[tuple[tuple[type[AttimoError], int], ...]] = (
    (UnknownWriteKeyError, 401),
    (AdminAuthError, 401),
    (IdentityRequiredError, 401),
    (InvalidSignatureError, 403),
    (ScopeError, 403),
    (OriginNotAllowedError, 403),
    (NotFoundError, 404),
    (PreconditionFailedError, 412),
    (BatchTooLargeError, 413),
    (UnsupportedEncodingError, 415),
    (InvalidBatchError, 400),
    (InvalidEventError, 400),
    (InvalidBodyError, 422),
    (OverloadedError, 429),
    (RateLimitedError, 429),
    (StoreError, 503),
)

# Websocket close codes (RFC 6455 §7.4.1) for errors that end a connection.
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_TRY_AGAIN_LATER: Final = 1013
# Application codes (RFC 6455 private-use range 4000-4999), named after the HTTP
# status of the same refusal. A browser never sees a refused handshake's HTTP
# status (only 1006, like an outage), so the gateway opens the socket and closes
# it with one of these; the tracker treats them as final and stops reconnecting.
CLOSE_UNKNOWN_WRITE_KEY: Final = 4401
CLOSE_ORIGIN_NOT_ALLOWED: Final = 4403
# A client that kept sending frames past its rate limit (`api.rate_limits`); not final: reconnect
# after a back-off and resend the unacked frames.
CLOSE_RATE_LIMITED: Final = 4429

# First match wins, as in HTTP_STATUS; a MissingWriteKeyError is an UnknownWriteKeyError (4401).
WS_CLOSE_CODE: Final[tuple[tuple[type[AttimoError], int], ...]] = (
    (UnknownWriteKeyError, CLOSE_UNKNOWN_WRITE_KEY),
    (OriginNotAllowedError, CLOSE_ORIGIN_NOT_ALLOWED),
    (StoreError, CLOSE_INTERNAL_ERROR),
    (OverloadedError, CLOSE_TRY_AGAIN_LATER),
    (RateLimitedError, CLOSE_RATE_LIMITED),
    (BatchTooLargeError, CLOSE_MESSAGE_TOO_BIG),
)


def status_for(exc: AttimoError) -> int:
    """The HTTP status code for an error (500 for one nobody mapped)."""
    for kind, status in HTTP_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def close_code_for(exc: AttimoError) -> int:
    """The websocket close code for an error that ends a connection."""
    for kind, code in WS_CLOSE_CODE:
        if isinstance(exc, kind):
            return code
    return CLOSE_INTERNAL_ERROR

"""Errors of the shared layer, all under one root so callers catch one type."""

from __future__ import annotations


class AttimoError(Exception):
    """Root of every error Attimo raises on purpose."""


class InvalidEventError(AttimoError):
    """One event failed validation; says which field and why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"event {index}: {reason}")
        self.index = index
        self.reason = reason


class InvalidBatchError(AttimoError):
    """The envelope around the events is unusable (not JSON, wrong shape)."""


class BatchTooLargeError(AttimoError):
    """A body or batch exceeds the configured size limit."""


class UnknownWriteKeyError(AttimoError):
    """The write key does not exist."""


class OriginNotAllowedError(AttimoError):
    """The request's Origin is not one of the write key's allowed origins."""


class StoreError(AttimoError):
    """Redis could not be reached or answered unexpectedly."""

"""Errors of the dispatcher and of webhook configuration, under the API's root."""

from __future__ import annotations

from api.errors import ApiError, InvalidBodyError


class DispatcherError(ApiError):
    """Root of the errors the dispatcher raises itself."""


class LeaseLostError(DispatcherError):
    """This dispatcher no longer owns the outbox shard it was delivering: stop touching it."""


class InvalidScheduleError(DispatcherError):
    """The retry schedule setting cannot be read (e.g. `5x`); the message names the bad step."""


class InvalidSecretError(InvalidBodyError):
    """A webhook secret that is not `whsec_` + base64 of 24–64 random bytes (→ 422)."""


class RefusedAddressError(InvalidBodyError):
    """A webhook URL that is malformed or reaches a private, loopback or link-local address (→ 422)."""

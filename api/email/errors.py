"""Errors of the e-mail package, under the API's root (statuses in `api.errors`)."""

from __future__ import annotations

from api.errors import ApiError, NotFoundError


class EmailError(ApiError):
    """Root of the e-mail package's errors."""


class InvalidLinkError(EmailError, NotFoundError):
    """A tracking or unsubscribe link that Attimo did not sign, or that was altered (→ 404)."""


class UnsendableEmailError(EmailError):
    """An action that can never become an e-mail (no recipient, no From address …): a permanent failure."""

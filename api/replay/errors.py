"""Why a replay stops before the end of its file (a rejected line never stops it)."""

from __future__ import annotations

from api.errors import ApiError


class ReplayError(ApiError):
    """Root of the replay's errors."""


class ApiUnreachableError(ReplayError):
    """The API did not answer (or kept answering 5xx / 429) for longer than the replay waits."""


class WriteKeyRefusedError(ReplayError):
    """The API refused the write key (401 / 403): no later batch can succeed."""


class UnreadableFileError(ReplayError):
    """The file cannot be opened or is not in a format the replay reads."""

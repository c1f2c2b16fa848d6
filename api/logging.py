"""Logging for the API and gateway: JSON lines with context fields bound.

Call sites bind context as keyword fields (`log(logger, INFO, "frame
rejected", seq=3, remote="…")`); the shared formatter in `state.logs`
merges them into the object, so logs can be filtered by contact, key or
request without regexes.
"""

from __future__ import annotations

import logging
from typing import Any

from state.logs import configure_logging as _configure_json_logging
from state.logs import is_configured


def configure_logging(level: int | str = logging.INFO, process_name: str = "api") -> None:
    """Send every record of the process to stderr as JSON lines (idempotent)."""
    if not is_configured():
        _configure_json_logging(process_name, logging.getLevelName(level) if isinstance(level, int) else level)


def log(logger: logging.Logger, level: int, event: str, exc_info: bool = False, **fields: Any) -> None:
    """Log `event` with context fields that end up as keys of the JSON object."""
    if logger.isEnabledFor(level):
        logger.log(level, event, exc_info=exc_info, extra={"fields": fields})

"""Errors raised by the dataflow, under the project's root error."""

from __future__ import annotations

from state.errors import AttimoError


class DataflowError(AttimoError):
    """Root of dataflow errors."""


class SourceError(DataflowError):
    """The Redis stream source could not read."""


class SinkError(DataflowError):
    """The Redis sink could not write."""

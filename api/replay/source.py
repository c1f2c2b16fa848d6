"""Read a file of events as a stream, whatever shape it has, holding one event at a time.

Three shapes are read: NDJSON (one event a line, what most tools and
Segment's own exports write), a JSON array of events, and a Segment batch
body `{"batch": [...]}`. A name ending in `.gz` / `.gzip` is decompressed on
the fly. The arrays are parsed incrementally (ijson, C backend) so a file of
gigabytes needs no more memory than one event; NDJSON lines are read with a
cap, so one enormous line cannot either.

An export's events carry the `sentAt` of their first delivery. Kept, the
ingest's clock-skew correction (`receivedAt - (sentAt - timestamp)`) would
move every event to the moment of the replay; it is dropped from events
that say when they happened (`timestamp` / `originalTimestamp`), so they
keep their own time.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import ijson
import msgspec

from api.replay.errors import UnreadableFileError

Shape = Literal["ndjson", "array", "batch"]
# A line longer than this is refused without being held; the validator's own (smaller) bound then
# applies to every line that fits, with the same message the ingest gives.
MAX_LINE_BYTES: Final = 1 << 20
_PEEK_BYTES: Final = 1 << 16
_GZIP_SUFFIXES: Final = (".gz", ".gzip")
_BATCH_START: Final = re.compile(rb'\s*\{\s*("batch"\s*:|$)')
_BOM: Final = b"\xef\xbb\xbf"
_TIME_FIELDS: Final = ("timestamp", "originalTimestamp")


@dataclass(frozen=True, slots=True)
class Item:
    """One event as read: where it is in the file, the JSON to check and send, or why it could not be read.

    `unit` is "line" for NDJSON and "event" (its 1-based position) for an
    array or a batch object, whose events have no line of their own.
    """

    unit: Literal["line", "event"]
    number: int
    payload: bytes
    error: str | None = None


def _shape(head: bytes) -> Shape:
    """Which of the three shapes a file is, from its first bytes."""
    head = head.removeprefix(_BOM).lstrip()
    if head.startswith(b"["):
        return "array"
    first_line, newline, _ = head.partition(b"\n")
    if newline:
        try:
            first = msgspec.json.decode(first_line)
        except msgspec.DecodeError:
            first = None
        if isinstance(first, dict):
            return "batch" if "batch" in first and "type" not in first else "ndjson"
    return "batch" if _BATCH_START.match(first_line) else "ndjson"


def _keep_own_time(event: Any) -> Any:
    """The event without the `sentAt` of its first delivery, when it says when it happened."""
    if isinstance(event, dict) and "sentAt" in event and any(event.get(name) for name in _TIME_FIELDS):
        event.pop("sentAt")
    return event


def _line_payload(line: bytes) -> bytes:
    """The line to check and send: as read, or re-encoded without its `sentAt` (see the module's doc)."""
    if b'"sentAt"' not in line:
        return line
    try:
        event = msgspec.json.decode(line)
        if isinstance(event, dict) and "sentAt" in event and "sentAt" not in _keep_own_time(event):
            return msgspec.json.encode(event)
    except (msgspec.DecodeError, msgspec.EncodeError, RecursionError, OverflowError):
        pass  # sent as read: the validator names what is wrong with it
    return line


class EventFile:
    """An open file of events: iterate it for `Item`s; `position` / `size` measure progress on disk."""

    def __init__(self, path: Path) -> None:
        try:
            self._disk = io.FileIO(path, "rb")
        except OSError as exc:
            raise UnreadableFileError(f"cannot open {path}: {exc.strerror or exc}") from exc
        self.size = os.fstat(self._disk.fileno()).st_size
        inner: io.RawIOBase | gzip.GzipFile = (
            gzip.GzipFile(fileobj=self._disk, mode="rb") if path.name.lower().endswith(_GZIP_SUFFIXES)
            else self._disk)
        self._reader = io.BufferedReader(inner, buffer_size=_PEEK_BYTES)
        try:
            self.shape: Shape = _shape(self._reader.peek(_PEEK_BYTES)[:_PEEK_BYTES])
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            self.close()
            raise UnreadableFileError(f"cannot read {path}: {exc}") from exc

    def position(self) -> int:
        """How many bytes of the file on disk have been read (compressed bytes for a gzip file)."""
        try:
            return self._disk.tell()
        except (OSError, ValueError):
            return self.size

    def close(self) -> None:
        self._reader.close()
        self._disk.close()

    def __enter__(self) -> EventFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Item]:
        try:
            if self.shape == "ndjson":
                yield from self._lines()
            else:
                yield from self._elements("item" if self.shape == "array" else "batch.item")
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream, a read error
            raise UnreadableFileError(f"the file could not be read to its end: {exc}") from exc

    def _lines(self) -> Iterator[Item]:
        number = 0
        while line := self._reader.readline(MAX_LINE_BYTES + 1):
            number += 1
            if number == 1:
                line = line.removeprefix(_BOM)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := self._reader.readline(_PEEK_BYTES)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the line without holding it
                yield Item("line", number, line[:200], f"line is over {MAX_LINE_BYTES} bytes")
                continue
            line = line.strip()
            if line:
                yield Item("line", number, _line_payload(line))

    def _elements(self, prefix: str) -> Iterator[Item]:
        number = 0
        events = ijson.items(self._reader, prefix, use_float=True)
        while True:
            try:
                event = next(events)
            except StopIteration:
                return
            except ijson.JSONError as exc:
                # Past a syntax error nothing more of an array can be trusted: say where, and stop.
                yield Item("event", number + 1, b"", f"not valid JSON after event {number}: {exc}")
                return
            number += 1
            try:
                yield Item("event", number, msgspec.json.encode(_keep_own_time(event)))
            except (msgspec.EncodeError, OverflowError, TypeError) as exc:
                yield Item("event", number, b"", f"cannot be represented: {exc}")

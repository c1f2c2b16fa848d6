"""Send batches of events to `POST /v1/batch`, waiting out backpressure and short outages.

One keep-alive connection (the standard library's `http.client`: the
replay is one request at a time, in order, so nothing asynchronous is
needed). The API's answers decide what happens next, as the wire contract
says: 200 all stored; 400 some (listed) or all refused, never to be sent
again; 401 / 403 the key is refused, which no retry mends; 429 overloaded,
wait `Retry-After` and send the same batch again; 5xx or no answer, retry
with backoff until `unreachable_after_s` have passed without an answer.
"""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import msgspec

from api.models import ErrorBody, IngestPartial
from api.replay.errors import ApiUnreachableError, WriteKeyRefusedError
from state.validation import HttpBatch

BATCH_PATH: Final = "/v1/batch"
# Far beyond a real overload (the API asks for at most 60 s at a time), short of waiting forever.
MAX_OVERLOAD_WAIT_S: Final = 600.0
_RETRY_AFTER_CAP_S: Final = 60.0
_FIRST_BACKOFF_S: Final = 0.25
_MAX_BACKOFF_S: Final = 2.0
_ENVELOPE_BYTES: Final = len(msgspec.json.encode(HttpBatch(batch=[])))

Waiting = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API did with one batch: the positions (in the batch) it refused, each with why."""

    refused: dict[int, str] = field(default_factory=dict)


def body_bytes(event_bytes: int, events: int) -> int:
    """The size of a batch body holding `events` events of `event_bytes` bytes in all."""
    return _ENVELOPE_BYTES + event_bytes + max(0, events - 1)


def _refusals(data: bytes, count: int) -> dict[int, str]:
    """The refused positions of a 400 answer: listed per event, or all of them for a refused body."""
    try:
        partial = msgspec.json.decode(data, type=IngestPartial)
        return {r.index: r.error for r in partial.rejected if 0 <= r.index < count}
    except msgspec.DecodeError:
        pass
    try:
        reason = msgspec.json.decode(data, type=ErrorBody).error
    except msgspec.DecodeError:
        reason = data[:200].decode(errors="replace") or "refused without a reason"
    return dict.fromkeys(range(count), reason)


class IngestClient:
    """Posts batches with the write key as HTTP Basic username (as Segment's libraries do)."""

    def __init__(self, api_url: str, write_key: str, *, unreachable_after_s: float = 15.0,
                 timeout_s: float = 30.0, on_wait: Waiting | None = None) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiUnreachableError(f"--api {api_url!r}: expected an http:// or https:// URL")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = parts.path.rstrip("/") + BATCH_PATH
        self._headers = {
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(),
        }
        self.api_url = api_url
        self.unreachable_after_s = unreachable_after_s
        self.timeout_s = timeout_s
        self.on_wait: Waiting = on_wait or (lambda _: None)
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout_s)
        return self._connection

    def close(self) -> None:
        """Close the connection (a later `send` opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post(self, body: bytes) -> tuple[int, str | None, bytes]:
        connection = self._connect()
        try:
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            return response.status, response.getheader("Retry-After"), response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def send(self, events: list[bytes]) -> Answer:
        """Send one batch until the API has decided on every event of it; say which it refused.

        Raises WriteKeyRefusedError on 401 / 403 and ApiUnreachableError
        when the API gave no usable answer for `unreachable_after_s` (or
        stayed overloaded for MAX_OVERLOAD_WAIT_S).
        """
        body = msgspec.json.encode(HttpBatch(batch=[msgspec.Raw(event) for event in events]))
        failing_since: float | None = None
        overloaded_since: float | None = None
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                status, retry_after, data = self._post(body)
            except (OSError, http.client.HTTPException) as exc:
                status, retry_after, data = 0, None, str(exc).encode()
            now = time.monotonic()
            if status == 200:
                return Answer()
            if status == 400:
                return Answer(_refusals(data, len(events)))
            if status in (401, 403):
                raise WriteKeyRefusedError(f"the API refused the write key ({status}): "
                                           f"{_refusals(data, 1).get(0, '')}")
            if status == 429:
                overloaded_since = overloaded_since or now
                if now - overloaded_since > MAX_OVERLOAD_WAIT_S:
                    raise ApiUnreachableError(f"the API was still overloaded after {MAX_OVERLOAD_WAIT_S:.0f} s")
                wait = min(_RETRY_AFTER_CAP_S, float(retry_after)) if retry_after and retry_after.isdigit() else 1.0
                self.on_wait(f"API overloaded (429): waiting {wait:g} s")
                time.sleep(wait)
                failing_since, backoff = None, _FIRST_BACKOFF_S
                continue
            if 400 <= status < 500:  # 413, 415, 422 …: this batch will never be taken as it is
                return Answer(_refusals(data, len(events)))
            failing_since = failing_since or now
            reason = f"HTTP {status}" if status else data.decode(errors="replace")
            if now - failing_since >= self.unreachable_after_s:
                raise ApiUnreachableError(f"no answer from {self.api_url} for {self.unreachable_after_s:g} s "
                                          f"(last: {reason})")
            self.on_wait(f"API not answering ({reason}): retrying in {backoff:g} s")
            time.sleep(backoff)
            backoff = min(_MAX_BACKOFF_S, backoff * 2)

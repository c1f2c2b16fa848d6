"""The websocket gateway: `GET /v1/stream?key=WRITE_KEY`.

Each tracker frame is validated event by event, the good events are appended
to the sharded streams in one pipeline, and only then is the frame acked, so
an ack means "durably stored". The connection is checked once, at the
handshake (write key, Origin); after that the per-frame path does no lookup.
Decisions published by the dataflow come back over the same socket.

How a connection is refused or ended (codes in `api.errors`):

- a path other than `/v1/stream`: HTTP 404, no socket;
- the write key cannot be looked up (Redis down): HTTP 503, no socket. A
  browser sees 1006 and retries with growing backoff; an opened-then-closed
  socket (1011) would fire its `open` event, which resets that backoff, so
  every browser would come back at the base delay during an outage;
- a missing or unknown write key: the socket opens and is closed at once with
  4401; an Origin the key does not allow: 4403. A browser is never told a
  refused handshake's HTTP status, only 1006, so without these codes the
  tracker could not tell a wrong key from an outage and would retry forever;
  it treats 4401, 4403 and 1008 as final. The reason is a short phrase
  ("unknown write key"); no frame on such a socket is read;
- a `uid` with a `sig` that does not sign it: the socket opens as usual
  (events are still taken) but is not verified for that user, so it gets
  none of that user's decision pushes (`api.gateway.push`);
- later: 1003 for a binary frame, 1009 for a frame far over the size limit,
  1011 when an append fails and 1013 when ingest stays overloaded (no ack in
  either case: the client resends after reconnecting);
- a frame over the write key's or the client IP's rate limit
  (`api.rate_limits`) is neither stored nor acked: it gets a `RateLimited`
  reply naming the limit and when to retry; `rate_limit_ws_strikes` such
  frames in a row close the socket with 4429 (not final: back off, resend).

Events of a known bot (`api.bots`) are acked and dropped, unless `accept_bots`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from api.bots import without_bots
from api.decisions.answer import DecisionService
from api.decisions.identity import SIGNATURE_PARAM, USER_PARAM, IdentityVerifier
from api.decisions.reader import DecisionReader
from api.decisions.redis_wire import PipelinedRedis
from api.errors import (
    CLOSE_UNSUPPORTED_DATA,
    MissingWriteKeyError,
    OverloadedError,
    RateLimitedError,
    close_code_for,
)
from api.gateway import metrics
from api.gateway.connections import Connections
from api.gateway.push import DecisionPusher, listen_for_decisions
from api.identity_mark import UNKNOWN_SENDER, Sender, mark_batch, sender_of, settings_trust
from api.logging import configure_logging, log
from api.rate_limits import RateLimits
from api.resources import Resources, open_resources, redis_client
from state.errors import (
    AttimoError,
    BatchTooLargeError,
    InvalidBatchError,
    OriginNotAllowedError,
    StoreError,
    UnknownWriteKeyError,
)
from state.events import Alias, Event
from state.frames import Ack, FrameError, RateLimited, RejectedEvent, encode_reply
from state.heartbeat import is_heartbeat_batch
from state.json_bounds import object_members
from state.metrics_server import serve_metrics
from state.process_stats import start_process_reporter
from state.rates import GATEWAY, HEARTBEAT
from state.settings import Settings
from state.validation import DecodedBatch, Seq

STREAM_PATH: Final = "/v1/stream"
# Frames a little over the batch limit get a polite error reply; far bigger
# ones are cut off by the websocket layer itself (close 1009) unread.
FRAME_SLACK_BYTES: Final = 64 * 1024
# How long start-up waits for the push subscription before reporting ready.
SUBSCRIBE_WAIT_S: Final = 5.0
MAX_CLOSE_REASON: Final = 120
# An unknown key is whatever the client sent; logs keep only its start.
MAX_LOGGED_KEY: Final = 64

logger = logging.getLogger("attimo.gateway")


class _SeqOnly(msgspec.Struct):
    seq: Seq | None = None


_seq_decoder: Final = msgspec.json.Decoder(_SeqOnly)


def peek_seq(body: bytes) -> int | None:
    """The frame's `seq` if the body is at least a JSON object with a usable one."""
    try:
        return _seq_decoder.decode(body).seq
    except (msgspec.DecodeError, RecursionError):
        members = object_members(body)
        if members is None or "seq" not in members:
            return None
        try:
            return msgspec.json.decode(members["seq"], type=Seq)
        except msgspec.DecodeError:
            return None


def visitor_ids(events: Iterable[Event]) -> set[str]:
    """Every anonymous / user id the events speak for (decisions are addressed by them)."""
    ids: set[str] = set()
    for event in events:
        if event.anonymous_id:
            ids.add(event.anonymous_id)
        if event.user_id:
            ids.add(event.user_id)
        if isinstance(event, Alias):
            ids.add(event.previous_id)
    return ids


def ack_frame(seq: int, decoded: DecodedBatch) -> str:
    """The reply that tells the client which events were stored and which were not."""
    return encode_reply(Ack(seq, len(decoded.accepted), [RejectedEvent(r.index, r.error) for r in decoded.rejected]))


def error_frame(seq: int | None, error: str) -> str:
    """The reply to a frame that could not be used at all."""
    return encode_reply(FrameError(seq, error))


def limited_frame(seq: int, exc: RateLimitedError) -> str:
    """The reply to a frame refused by a rate limit: not stored, not acked, resend after the wait."""
    return encode_reply(RateLimited(seq, exc.limit, str(exc), exc.retry_after_s))


@dataclass(slots=True)
class SocketClient:
    """Who a socket counts as for rate limits and bot filtering, fixed at its handshake."""

    key: str
    ip: str
    # The browser's own user agent (None for a server-side client, which sends no Origin).
    browser_agent: str | None
    strikes: int = 0


class Gateway:
    """Handshake checks and the per-connection frame loop."""

    def __init__(self, resources: Resources) -> None:
        self.settings = settings = resources.settings
        self.client = resources.redis
        self.validator = resources.validator
        self.write_keys = resources.write_keys
        self.backpressure = resources.backpressure
        self.connections: Connections[ServerConnection] = Connections(settings.gateway_max_ids_per_socket)
        self.appender = resources.appender
        # Handshakes accepted only to be closed with 4401 / 4403 by `handle`. Weak
        # keys: a handshake that fails after `process_request` never reaches `handle`.
        self._refused: weakref.WeakKeyDictionary[ServerConnection, AttimoError] = weakref.WeakKeyDictionary()
        self.verifier = IdentityVerifier.from_settings(settings)
        # User ids proved at the handshake (`uid` + `sig`), until `handle` registers the socket.
        self._proved: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()
        # Each open socket's write key, as trust marks need it (`api.identity_mark`).
        self._senders: weakref.WeakKeyDictionary[ServerConnection, Sender] = weakref.WeakKeyDictionary()
        self.rate_limits = RateLimits.from_settings(settings)
        self._clients: weakref.WeakKeyDictionary[ServerConnection, SocketClient] = weakref.WeakKeyDictionary()

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Check the path, write key and Origin before the socket opens.

        A wrong path is refused with HTTP 404 and a failed key look-up with 503
        (retryable). A missing or unknown key or a disallowed Origin is let
        through and remembered, so that `handle` closes the socket with a code
        a browser can read (4401 / 4403; see the module docstring).
        """
        url = urlsplit(request.path)
        if url.path != STREAM_PATH:
            return connection.respond(404, "Not Found\n")
        query = parse_qs(url.query)
        key = query.get("key", [""])[0]
        origin = request.headers.get("Origin")
        user_id = query.get(USER_PARAM, [""])[0]
        if user_id:
            if self.verifier.valid(user_id, query.get(SIGNATURE_PARAM, [""])[0]):
                self._proved[connection] = user_id
            else:
                log(logger, logging.INFO, "user id not verified at handshake", origin=origin)
        refusal: AttimoError | None = None
        if not key:
            refusal = MissingWriteKeyError("missing write key")
        else:
            try:
                write_key = await self.write_keys.get(key)
            except (RedisError, OSError) as exc:
                log(logger, logging.ERROR, "write key lookup failed", error=str(exc))
                return connection.respond(503, "store unavailable\n")
            if write_key is None:
                refusal = UnknownWriteKeyError("unknown write key")
            elif not write_key.allows_origin(origin):
                refusal = OriginNotAllowedError("origin not allowed for this write key")
            elif write_key.kind == "secret":  # the socket is the browser's path; the secret key stays on servers
                refusal = OriginNotAllowedError("a secret write key is for the shop's back end (HTTP), not a socket")
            else:
                self._senders[connection] = sender_of(write_key, settings_trust(self.settings))
        if refusal is not None:
            log(logger, logging.INFO, "connection refused", reason=str(refusal), origin=origin,
                key=key[:MAX_LOGGED_KEY])
            self._refused[connection] = refusal
        return None

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one socket: reply to every frame until it closes."""
        refusal = self._refused.pop(ws, None)
        if refusal is not None:
            await ws.close(close_code_for(refusal), str(refusal)[:MAX_CLOSE_REASON])
            return
        proved = self._proved.pop(ws, None)
        if proved is not None:
            self.connections.verify(ws, proved)
        self._clients[ws] = self.socket_client(ws)
        metrics.CONNECTIONS.inc()
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.close(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported")
                    return
                await ws.send(await self.handle_frame(ws, message.encode()))
        except (StoreError, OverloadedError, RateLimitedError) as exc:
            # No ack was sent for this frame: the client keeps it and resends.
            log(logger, logging.WARNING, "closing connection", error=str(exc),
                remote=str(ws.remote_address))
            await ws.close(close_code_for(exc), str(exc)[:MAX_CLOSE_REASON])
        except ConnectionClosed:
            pass
        finally:
            metrics.CONNECTIONS.dec()
            self.connections.forget(ws)

    def socket_client(self, ws: ServerConnection) -> SocketClient:
        """The key, client IP and browser user agent a socket's frames count against."""
        headers = ws.request.headers if ws.request is not None else None
        key = parse_qs(urlsplit(ws.request.path).query).get("key", [""])[0] if ws.request is not None else ""
        remote = ws.remote_address
        peer = str(remote[0]) if isinstance(remote, tuple) and remote else None
        forwarded = headers.get("X-Forwarded-For") if headers is not None else None
        ip = self.rate_limits.proxies.client_ip(peer, forwarded)
        agent = headers.get("User-Agent", "") if headers is not None and "Origin" in headers else None
        return SocketClient(key, ip, agent)

    def over_limit(self, ws: ServerConnection, seq: int, events: int) -> str | None:
        """The `RateLimited` reply when the frame's events are over a limit, else None (charged).

        Raises instead once the socket has been refused `rate_limit_ws_strikes`
        times in a row, which closes it with 4429.
        """
        client = self._clients.get(ws)
        if client is None:
            return None
        try:
            self.rate_limits.check_ingest(client.key, client.ip, events)
        except RateLimitedError as exc:
            client.strikes += 1
            metrics.FRAMES_LIMITED.inc()
            if client.strikes >= self.settings.rate_limit_ws_strikes:
                raise
            return limited_frame(seq, exc)
        client.strikes = 0
        return None

    async def handle_frame(self, ws: ServerConnection, body: bytes) -> str:
        """Validate, append and ack one frame; returns the reply to send.

        Every usable frame gets an ack and every unusable one an error
        reply. A store failure, an overload or anything unexpected ends the
        connection without a reply instead (close 1011 / 1013): whether its
        events were stored is then unknown, so the client resends the frame
        after reconnecting and de-duplication decides — an error reply would
        make it drop the frame.
        """
        try:
            return await self._handle_frame(ws, body)
        except (StoreError, OverloadedError, RateLimitedError):
            raise
        except Exception as exc:
            log(logger, logging.ERROR, "frame failed", exc_info=True, error=repr(exc)[:200],
                remote=str(ws.remote_address))
            raise StoreError(f"internal error handling a frame: {exc!r}"[:MAX_CLOSE_REASON]) from exc

    async def _handle_frame(self, ws: ServerConnection, body: bytes) -> str:
        limit = self.settings.max_batch_bytes
        if len(body) > limit:
            metrics.FRAMES_REFUSED.inc()
            return error_frame(peek_seq(body), f"frame is {len(body)} bytes; at most {limit} allowed")
        try:
            seq, decoded = self.validator.decode_frame(body, datetime.now(UTC))
        except (BatchTooLargeError, InvalidBatchError) as exc:
            metrics.FRAMES_REFUSED.inc()
            return error_frame(peek_seq(body), str(exc))
        # Trust marks (browser / verified); a user id proved by its signature also verifies the socket
        # for that user's decision pushes, as `uid` + `sig` at the handshake do.
        for user_id in mark_batch(decoded, self._senders.get(ws) or UNKNOWN_SENDER, self.verifier):
            self.connections.verify(ws, user_id)
        if decoded.accepted and (limited := self.over_limit(ws, seq, len(decoded.accepted))) is not None:
            return limited
        events = decoded.accepted
        if events and not self.settings.accept_bots:
            client = self._clients.get(ws)
            events, bots = without_bots(events, client.browser_agent if client is not None else None)
            metrics.EVENTS_BOT.inc(bots)
        if events:
            if not await self.backpressure.wait_until_ready(self.settings.max_ack_delay_s):
                raise OverloadedError(await self.backpressure.lag_s(), 1)
            # Learn the visitor before appending: the dataflow may push its first
            # decision before the append's reply reaches us.
            self.connections.learn(ws, visitor_ids(events))
            try:
                source = HEARTBEAT if is_heartbeat_batch(events) else GATEWAY
                await self.appender.append(events, source)
            except Exception as exc:
                # Whatever failed (redis-py under uvloop raises RuntimeError on a
                # closed transport), the events may or may not be stored: close
                # without an ack, so the client resends and de-duplication decides.
                raise StoreError(f"append failed: {exc!r}") from exc
            metrics.EVENTS_ACCEPTED.inc(len(events))
        if decoded.rejected:
            metrics.EVENTS_REJECTED.inc(len(decoded.rejected))
            log(logger, logging.DEBUG, "events rejected", seq=seq, rejected=len(decoded.rejected))
        metrics.FRAMES_ACKED.inc()
        return ack_frame(seq, decoded)


async def serve_gateway(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run the gateway on settings.host:settings.gateway_port until cancelled."""
    resources = await open_resources(settings)
    pubsub_client = redis_client(settings, blocking_reads=True)
    decisions_redis = PipelinedRedis.from_url(settings.redis_url, settings.redis_timeout_s)
    gateway = Gateway(resources)
    reader = DecisionReader(decisions_redis, settings.decisions_hold_s, settings.decisions_max_held)
    pusher = DecisionPusher(gateway.connections, DecisionService(reader, gateway.verifier))
    push_task: asyncio.Task[None] | None = None
    try:
        subscribed = asyncio.Event()
        push_task = asyncio.create_task(listen_for_decisions(pubsub_client, pusher, subscribed))
        async with serve(
            gateway.handle, settings.host, settings.gateway_port,
            process_request=gateway.process_request,
            # permessage-deflate costs +43..77 % CPU per event for little gain
            # on small frames (notes/performance.md).
            compression=None,
            max_size=settings.max_batch_bytes + FRAME_SLACK_BYTES,
        ) as server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscribed.wait(), SUBSCRIBE_WAIT_S)
            log(logger, logging.INFO, "gateway listening", host=settings.host, port=settings.gateway_port)
            if ready is not None:
                ready.set()
            await server.serve_forever()
    finally:
        if push_task is not None:
            push_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await push_task
        await pubsub_client.aclose()
        await decisions_redis.close()
        await resources.close()


def _runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    run: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    return run


def run_gateway(settings: Settings) -> None:
    """Run the gateway in the foreground (uvloop when installed) until interrupted."""
    configure_logging(process_name="gateway")
    serve_metrics("gateway", settings.host, settings.gateway_metrics_port)
    start_process_reporter("gateway", settings.redis_url)
    # websockets logs every connection at INFO: too chatty for thousands of visitors.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        _runner()(serve_gateway(settings))

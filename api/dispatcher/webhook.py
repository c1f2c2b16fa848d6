"""One webhook attempt, as the Standard Webhooks specification describes it.

`POST` to the endpoint's URL with the JSON body `WebhookBody` (`type`,
`timestamp`, `data` = the action) and the headers `webhook-id` (the action
id, the receiver's idempotency key), `webhook-timestamp` (this attempt's
unix seconds) and `webhook-signature` (one `v1,…` per secret in force).
Redirects are not followed. The HTTP client (aiohttp: about 0.2 ms of CPU
per request here, where httpx took 1–3 ms) resolves hosts through
`GuardedResolver`, so it connects only to addresses the SSRF policy permits
(`api.dispatcher.addresses`); a URL naming an address directly is checked
before the request. How the answer is read:

| answer | result |
|---|---|
| 2xx | delivered |
| 410 Gone | the endpoint is disabled; the action is dead-lettered |
| 429, 502, 503, 504 with `Retry-After` | retry, not before it asks (capped at the schedule's longest delay) |
| anything else, a timeout, a connection error, a refused address | retry |

An endpoint that has been failing, without one success, for longer than
`ATTIMO_WEBHOOK_DISABLE_AFTER_S` is disabled too. A disabled or unknown
endpoint dead-letters its actions without a request.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult

from api.dispatcher.addresses import AddressPolicy, literal_address, permitted_addresses, refused, split_url
from api.dispatcher.endpoints import EndpointStore
from api.dispatcher.errors import RefusedAddressError
from api.dispatcher.records import EndpointHealth, WebhookEndpoint
from api.dispatcher.schedule import parse_retry_after
from api.dispatcher.senders import AttemptResult
from api.dispatcher.signing import signature_header
from state.actions import Action, WebhookBody

EVENT_TYPE: Final = "workflow.action"
USER_AGENT: Final = "Attimo-Webhooks/1"
THROTTLE_STATUSES: Final = frozenset({429, 502, 503, 504})
MAX_ANSWER_BYTES: Final = 64 * 1024
DNS_CACHE_S: Final = 10
# An endpoint's configuration and health are re-read this often: a change through the admin API
# (new URL, rotated secret, re-enabled) or another dispatcher disabling it shows within this time.
ENDPOINT_CACHE_S: Final = 1.0
_encoder: Final = msgspec.json.Encoder()


def webhook_body(action: Action) -> bytes:
    """The body of an action's webhook: the same bytes at every attempt."""
    stamp = datetime.fromtimestamp(action.created_at, UTC).isoformat().replace("+00:00", "Z")
    return _encoder.encode(WebhookBody(type=EVENT_TYPE, timestamp=stamp, data=action))


class GuardedResolver(AbstractResolver):
    """The HTTP client's resolver: a host's addresses, only those the policy permits."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        """Permitted addresses of `host` (RefusedAddressError when there are none)."""
        return [ResolveResult(hostname=host, host=str(a), port=port,
                              family=socket.AF_INET6 if a.version == 6 else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
                for a in await permitted_addresses(self._policy, host, port)]

    async def close(self) -> None:
        """Nothing to release."""


def webhook_session(policy: AddressPolicy, concurrency: int, timeout_s: float) -> aiohttp.ClientSession:
    """The HTTP client of webhook attempts: pooled, guarded resolver, no proxies from the environment."""
    connector = aiohttp.TCPConnector(limit=concurrency, resolver=GuardedResolver(policy), ttl_dns_cache=DNS_CACHE_S)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 headers={"User-Agent": USER_AGENT}, auto_decompress=False, trust_env=False)


class WebhookSender:
    """Sends an action to its endpoint once, and keeps the endpoint's health."""

    def __init__(self, session: aiohttp.ClientSession, endpoints: EndpointStore, policy: AddressPolicy, *,
                 timeout_s: float, disable_after_s: float, longest_delay_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._session = session
        self._endpoints = endpoints
        self._policy = policy
        self._timeout_s = timeout_s
        self._disable_after_s = disable_after_s
        self._longest_delay_s = longest_delay_s
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[WebhookEndpoint, EndpointHealth]]] = {}

    async def send(self, action: Action) -> AttemptResult:
        """One attempt (within the timeout, from the address check to the answer's status)."""
        endpoint_id = action.endpoint or ""
        found = await self._endpoint(endpoint_id)
        if found is None:
            return AttemptResult("permanent", f"no webhook endpoint {endpoint_id!r} is configured")
        endpoint, health = found
        if health.disabled:
            return AttemptResult("permanent", f"endpoint {endpoint_id!r} is disabled: {health.disabled_reason}")
        result = await self._attempt(action, endpoint.url, endpoint.signing_secrets(self._clock()))
        if result.outcome == "delivered":
            if health.failing_since is not None:
                await self._endpoints.record_success(endpoint_id)
                self._cache.pop(endpoint_id, None)
            return result
        now = self._clock()
        if result.status == 410:
            reason = f"answered 410 Gone at {_stamp(now)}"
            await self._disable(endpoint_id, reason, now)
            return AttemptResult("permanent", f"endpoint {endpoint_id!r} disabled: {reason}", 410)
        since = await self._endpoints.record_failure(endpoint_id, now)
        if health.failing_since is None:
            self._cache.pop(endpoint_id, None)
        if now - since >= self._disable_after_s:
            reason = f"failing since {_stamp(since)} without a success; last: {result.reason}"
            await self._disable(endpoint_id, reason, now)
            return AttemptResult("permanent", f"endpoint {endpoint_id!r} disabled: {reason}", result.status)
        return result

    async def _endpoint(self, endpoint_id: str) -> tuple[WebhookEndpoint, EndpointHealth] | None:
        """The endpoint as read at most `ENDPOINT_CACHE_S` ago: saves a Redis round trip per webhook.

        Missing and disabled endpoints are read afresh every time, so one
        created or re-enabled through the admin API is used at once.
        """
        now = time.monotonic()
        cached = self._cache.get(endpoint_id)
        if cached is not None and now - cached[0] < ENDPOINT_CACHE_S:
            return cached[1]
        found = await self._endpoints.get(endpoint_id)
        if found is not None and not found[1].disabled:
            self._cache[endpoint_id] = (now, found)
        return found

    async def _disable(self, endpoint_id: str, reason: str, now: float) -> None:
        await self._endpoints.disable(endpoint_id, reason, now)
        self._cache.pop(endpoint_id, None)

    async def _attempt(self, action: Action, url: str, secrets: list[str]) -> AttemptResult:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._post(action, url, secrets)
        except TimeoutError:
            return AttemptResult("retry", f"no answer within {self._timeout_s:g} s")
        except RefusedAddressError as exc:
            return AttemptResult("retry", str(exc))
        except aiohttp.ClientError as exc:
            return AttemptResult("retry", f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _post(self, action: Action, url: str, secrets: list[str]) -> AttemptResult:
        _scheme, host, _port = split_url(url)
        literal = literal_address(host)
        if literal is not None and (why := self._policy.refusal(literal)) is not None:
            raise refused(host, [why])  # the resolver never sees a URL that names its address
        body = webhook_body(action)
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": action.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, action.id, timestamp, body),
        }
        async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            await _drain(response)
        if 200 <= status < 300:
            return AttemptResult("delivered", f"answered {status}", status)
        if status in THROTTLE_STATUSES and retry_after is not None:
            wait = min(retry_after, self._longest_delay_s)
            return AttemptResult("retry", f"answered {status}, Retry-After {wait:g} s", status, wait)
        return AttemptResult("retry", f"answered {status}", status)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read a short answer to its end, so its connection can serve the next webhook; a long one is cut off."""
    read = 0
    while chunk := await response.content.readany():
        read += len(chunk)
        if read > MAX_ANSWER_BYTES:
            response.close()  # drops the connection: no receiver makes us read megabytes
            return


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

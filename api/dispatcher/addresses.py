"""Which addresses a webhook may reach: no private, loopback or link-local ones (SSRF).

Anyone who may configure an endpoint could otherwise make Attimo call into
its own network (Redis, a cloud metadata service at 169.254.169.254, an
admin panel). So a webhook's host is resolved at send time — a name that
resolved to a public address when it was configured may resolve to
127.0.0.1 later (DNS rebinding) — by the HTTP client's own resolver
(`api.dispatcher.webhook.GuardedResolver`), so the connection goes to an
address that was checked, never to a second resolution. Only globally reachable unicast
addresses pass, unless inside a network the operator allows
(`ATTIMO_WEBHOOK_ALLOWED_NETWORKS`). IPv6 forms that embed an IPv4 address
(mapped, 6to4, NAT64) are judged by the IPv4 address inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from api.dispatcher.errors import RefusedAddressError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
MAX_URL_CHARS: Final = 2048


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"127.0.0.1/32,10.0.0.0/8"` as networks; RefusedAddressError naming an unreadable one."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise RefusedAddressError(f"allowed network {part!r} is not a CIDR network") from exc
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def kind_of(address: IPAddress) -> str | None:
    """Why an address is not public (`loopback`, `private` …), or None when it is globally reachable."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return kind_of(inner)
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-global"


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses pass; others only inside an allowed network."""

    allowed: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_setting(cls, text: str) -> AddressPolicy:
        """The policy `ATTIMO_WEBHOOK_ALLOWED_NETWORKS` describes."""
        return cls(parse_networks(text))

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be called, or None when it may."""
        kind = kind_of(address)
        if kind is None or any(address.version == n.version and address in n for n in self.allowed):
            return None
        return f"{address} is a {kind} address"


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL; RefusedAddressError when it is not an absolute http(s) URL."""
    if len(url) > MAX_URL_CHARS:
        raise RefusedAddressError(f"webhook URL is longer than {MAX_URL_CHARS} characters")
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise RefusedAddressError("webhook URL contains a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedAddressError(f"webhook URL {url!r} cannot be read: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddressError(f"webhook URL {url!r} is not an absolute http or https URL")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names directly (`127.0.0.1`, `::1`), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        found.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), None)
    return list(found)


def refused(host: str, refusals: list[str]) -> RefusedAddressError:
    """The error for a host none of whose addresses may be called."""
    return RefusedAddressError(f"webhook host {host!r} refused: {'; '.join(refusals) or 'no address'} "
                               "(private, loopback and link-local addresses are refused unless "
                               "ATTIMO_WEBHOOK_ALLOWED_NETWORKS allows them)")


async def permitted_addresses(policy: AddressPolicy, host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` the policy permits, in the resolver's order; RefusedAddressError if none is.

    A name that does not resolve raises OSError, as the resolver does.
    """
    addresses = await resolve(host, port)
    permitted = [a for a in addresses if policy.refusal(a) is None]
    if not permitted:
        raise refused(host, [why for a in addresses if (why := policy.refusal(a)) is not None])
    return permitted


async def check_configured_url(policy: AddressPolicy, url: str) -> None:
    """Refuse, when an endpoint is configured, a URL that is malformed or reaches a forbidden address now.

    A name that does not resolve yet is accepted (it is checked again at
    every send); one that resolves only to forbidden addresses is not.
    """
    _scheme, host, port = split_url(url)
    try:
        await permitted_addresses(policy, host, port)
    except OSError:
        return

"""Privacy at ingest: IP addresses anonymised and user agents dropped before an event reaches a stream.

Applied by the event validator (`state.validation`) that the gateway and the
HTTP ingest share, so nothing un-anonymised is ever appended, replayed or
exported. Settings: `ATTIMO_ANONYMIZE_IP` (IPv4 loses its last octet, IPv6
its last 80 bits — Google Analytics' rule; an IPv4-mapped IPv6 address is
treated as IPv4) and `ATTIMO_KEEP_USER_AGENT` (false: `context.userAgent`
and `context.userAgentData` are removed). A `context.ip` that is not an IP
address cannot be anonymised, so it is removed.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

IP_FIELD: Final = "ip"
USER_AGENT_FIELDS: Final = ("userAgent", "userAgentData")
_V6_KEEP: Final = (1 << 128) - (1 << 80)  # the first 48 bits


def anonymize_ip(text: str) -> str | None:
    """The address with its host part zeroed (IPv4 /24, IPv6 /48), or None when `text` is no IP address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        else:
            return str(ipaddress.IPv6Address(int(address) & _V6_KEEP))
    return str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))


def scrub_context(context: dict[str, Any], anonymize: bool, keep_user_agent: bool) -> dict[str, Any] | None:
    """A copy of `context` with the IP anonymised and / or the user agent dropped; None when nothing changes."""
    changed = False
    out = dict(context)
    if anonymize and IP_FIELD in out:
        value = out[IP_FIELD]
        masked = anonymize_ip(value) if isinstance(value, str) else None
        if masked is None:
            del out[IP_FIELD]
        else:
            out[IP_FIELD] = masked
        changed = True
    if not keep_user_agent:
        for name in USER_AGENT_FIELDS:
            if name in out:
                del out[name]
                changed = True
    return out if changed else None

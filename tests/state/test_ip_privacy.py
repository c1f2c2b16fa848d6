"""IP anonymisation at ingest (`state.ip_privacy`): the masked address keeps only the network part."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from state.ip_privacy import anonymize_ip, scrub_context


class TestAnonymizeIp:
    """IPv4 keeps its /24, IPv6 its /48; anything else is not an address."""

    @given(st.ip_addresses(v=4))
    def test_ipv4_keeps_the_first_three_octets(self, address: ipaddress.IPv4Address) -> None:
        text = anonymize_ip(str(address))
        assert text is not None
        masked = ipaddress.IPv4Address(text)
        assert str(masked).rsplit(".", 1)[1] == "0"
        assert ipaddress.ip_network(f"{address}/24", strict=False) == ipaddress.ip_network(f"{masked}/24")

    @given(st.ip_addresses(v=6))
    def test_ipv6_keeps_the_first_48_bits(self, address: ipaddress.IPv6Address) -> None:
        text = anonymize_ip(str(address))
        assert text is not None
        masked = ipaddress.ip_address(text)
        if address.ipv4_mapped is not None:
            assert masked == ipaddress.IPv4Address(int(address.ipv4_mapped) & 0xFFFFFF00)
            return
        assert int(masked) & ((1 << 80) - 1) == 0
        assert int(masked) >> 80 == int(address) >> 80

    def test_what_is_not_an_address_cannot_be_masked(self) -> None:
        assert anonymize_ip("not-an-ip") is None
        assert anonymize_ip("203.0.113.77:8080") is None
        assert anonymize_ip(" 203.0.113.77 ") == "203.0.113.0"


class TestScrubContext:
    """Only the settings asked for change the context; nothing else in it."""

    def test_nothing_to_do_is_no_copy(self) -> None:
        assert scrub_context({"locale": "it"}, anonymize=True, keep_user_agent=False) is None
        assert scrub_context({"ip": "1.2.3.4", "userAgent": "x"}, anonymize=False, keep_user_agent=True) is None

    def test_ip_masked_user_agent_dropped_rest_kept(self) -> None:
        context = {"ip": "1.2.3.4", "userAgent": "x", "userAgentData": {"mobile": True}, "locale": "it"}
        assert scrub_context(context, anonymize=True, keep_user_agent=False) == {"ip": "1.2.3.0", "locale": "it"}
        assert context["ip"] == "1.2.3.4"  # the event's own dict is not changed

    def test_a_non_string_ip_is_dropped(self) -> None:
        assert scrub_context({"ip": 1234}, anonymize=True, keep_user_agent=True) == {}

"""Verified identity in the dataflow: a browser's unproved claim to a user id changes nothing of that user.

The ingest marks each event's `trust` (`state.events.Trust`); these tests
feed marked events through both real stages (one logic per contact shard,
wired as `flow.build_flow` wires them) and read what the sink would hold.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from dataflows.io.outputs import AliasWrite
from state.config_store import ConfigControl
from state.events import BROWSER, SERVER, VERIFIED, Event, Trust
from state.profile import Profile
from state.shards import shard_of
from tests.factories import FIXED_NOW
from tests.state.test_event_properties import SHARDS, final_profiles, stages, validator


def marked(trust: Trust, **raw: Any) -> Event:
    """One validated event with the ingest's `trust` mark."""
    batch = validator.validate_all([orjson.dumps(raw)], FIXED_NOW)
    assert not batch.rejected, batch.rejected
    return msgspec.structs.replace(batch.accepted[0], trust=trust)


def other_shard_id(prefix: str, than: str) -> str:
    """An id of `prefix` whose contact shard differs from `than`'s (so the two meet only through routing)."""
    return next(f"{prefix}{i}" for i in range(100) if shard_of(f"{prefix}{i}", SHARDS) != shard_of(than, SHARDS))


VICTIM_SIGNS_UP = dict(type="identify", anonymousId="victim-phone", userId="victim",
                       traits={"email": "victim@example.com", "name": "Vera"})


def run(*events: Event) -> tuple[dict[str, Profile], list[Any]]:
    flow = stages(FIXED_NOW, 64)
    outputs = flow.feed([ConfigControl(1)])
    for event in events:
        outputs += flow.feed([event])
    return final_profiles(outputs), outputs


class TestBrowserClaims:
    """An event's user id from a browser counts only when the ingest proved it."""

    def test_an_unproved_identify_neither_merges_nor_changes_the_known_contact(self) -> None:
        """The takeover: the attacker's device claims the victim's user id with its own e-mail."""
        attacker = other_shard_id("attacker-", "victim")
        profiles, outputs = run(
            marked(SERVER, **VICTIM_SIGNS_UP),
            marked(BROWSER, type="identify", anonymousId=attacker, userId="victim",
                   traits={"email": "evil@example.com", "name": "Mallory"}))
        victim = profiles["victim"]
        assert victim.traits == {"email": "victim@example.com", "name": "Vera"}
        assert attacker not in victim.anonymous_ids
        assert AliasWrite(attacker, "victim") not in outputs
        assert AliasWrite("evil@example.com", "victim") not in outputs
        # The attempt stays on the attacker's own anonymous visitor, as a visitor.
        assert profiles[attacker].user_id is None
        assert profiles[attacker].traits["email"] == "evil@example.com"

    def test_a_proved_identify_merges(self) -> None:
        """A signed identify (marked verified by the ingest) merges the device into the user."""
        device = other_shard_id("laptop-", "victim")
        profiles, outputs = run(marked(SERVER, **VICTIM_SIGNS_UP),
                                marked(VERIFIED, type="identify", anonymousId=device, userId="victim",
                                       traits={"plan": "gold"}))
        assert device in profiles["victim"].anonymous_ids
        assert profiles["victim"].traits["plan"] == "gold"
        assert AliasWrite(device, "victim") in outputs
        assert device not in profiles

    def test_a_server_identify_merges(self) -> None:
        """An identify sent with the secret key (marked server) merges and sets traits."""
        profiles, _ = run(marked(SERVER, **VICTIM_SIGNS_UP))
        assert profiles["victim"].anonymous_ids == ["victim-phone"]
        assert profiles["victim"].email == "victim@example.com"

    def test_unverified_traits_never_overwrite_verified_ones(self) -> None:
        """A linked device's identify without proof only fills gaps in the contact's traits."""
        profiles, _ = run(marked(SERVER, **VICTIM_SIGNS_UP),
                          marked(BROWSER, type="identify", anonymousId="victim-phone", userId="victim",
                                 traits={"email": "typo@example.com", "city": "Lyon"}),
                          marked(BROWSER, type="identify", anonymousId="victim-phone",
                                 traits={"name": "Someone else"}))
        assert profiles["victim"].traits == {"email": "victim@example.com", "name": "Vera", "city": "Lyon"}

    def test_an_anonymous_visitors_own_traits_follow_its_latest_identify(self) -> None:
        """Traits of a visitor nobody proved are all the browser's: the newest wins there."""
        profiles, _ = run(marked(BROWSER, type="identify", anonymousId="v1", traits={"email": "a@example.com"}),
                          marked(BROWSER, type="identify", anonymousId="v1", traits={"email": "b@example.com"}))
        assert profiles["v1"].traits["email"] == "b@example.com"

    def test_an_anonymous_id_that_is_a_users_id_makes_no_visitor(self) -> None:
        """A browser sending the victim's user id as its anonymousId touches nothing of the victim."""
        profiles, outputs = run(
            marked(SERVER, **VICTIM_SIGNS_UP),  # routed by the phone's id: the victim's shard hears of it
            marked(BROWSER, type="identify", anonymousId="victim", traits={"email": "evil@example.com"}),
            marked(BROWSER, type="track", anonymousId="victim", event="Order Completed",
                   properties={"revenue": 1}))
        assert profiles["victim"].traits["email"] == "victim@example.com"
        assert profiles["victim"].user_id == "victim"
        assert profiles["victim"].counters.orders == 0
        assert AliasWrite("evil@example.com", "victim") not in outputs

    def test_a_browser_alias_without_proof_links_nothing(self) -> None:
        """`alias` from a browser without proof would link a device to anyone: dropped."""
        _, outputs = run(marked(SERVER, **VICTIM_SIGNS_UP),
                         marked(BROWSER, type="alias", previousId="attacker-dev", userId="victim"))
        assert AliasWrite("attacker-dev", "victim") not in outputs

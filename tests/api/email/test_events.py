"""The events e-mail links append are events the ingest validator accepts, whatever the ids, URL or browser."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from api.email.events import engagement_event
from api.email.links import MAX_LINK_URL_CHARS, LinkClaims, LinkSigner, Purpose
from state.events import Track
from state.validation import EventValidator, Limits, is_blocked_id
from tests.state.event_strategies import CONTROL_CHARS, fuzz_settings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VALIDATOR = EventValidator(Limits())

# Ids as ingest lets them in: no control characters, no lone surrogates (JSON refuses them), not blocked.
ids = st.text(st.characters(blacklist_characters=CONTROL_CHARS, blacklist_categories=("Cs",)), min_size=1,
              max_size=200).filter(
    lambda value: not is_blocked_id(value))
claims = st.builds(LinkClaims, action_id=ids, contact_id=ids, known=st.booleans(), workflow_id=ids,
                   workflow_version=st.integers(0, 2**31), step_id=ids, branch=st.none() | ids,
                   other_user_id=st.none() | ids)
# Query strings arrive percent-decoded as UTF-8 (errors replaced): no lone surrogates.
urls = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), max_size=200).map(
    lambda path: f"https://shop.example/{path}"[:MAX_LINK_URL_CHARS])


@fuzz_settings(300)
@given(purpose=st.sampled_from(["open", "click", "unsubscribe"]), claims=claims, url=urls,
       user_agent=st.none() | st.text(max_size=2000), anonymous=st.booleans())
def test_every_engagement_event_passes_the_ingest_validator_unchanged(
        purpose: Purpose, claims: LinkClaims, url: str, user_agent: str | None, anonymous: bool) -> None:
    """What the routes append could have been sent by a client: same bounds, nothing for the dataflow to choke on."""
    token = LinkSigner([b"k"]).sign(purpose, claims, url if purpose == "click" else "")
    address = (claims.contact_id, None) if anonymous else (None, claims.user_id or claims.contact_id)
    event = engagement_event(purpose, token, claims, address, NOW, url=url if purpose == "click" else None,
                             user_agent=user_agent)
    accepted = VALIDATOR.validate_one(msgspec.json.encode(event), NOW)
    assert isinstance(accepted, Track)
    assert accepted == event

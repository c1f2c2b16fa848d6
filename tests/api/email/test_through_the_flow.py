"""Opens and clicks through the real dataflow: counted on the right contact, a reloaded pixel once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.email.links import LinkSigner, claims_for
from state.events import Track
from state.profile import Profile
from state.settings import Settings
from tests.api.email.conftest import email_action, mail_settings
from tests.api.email.test_routes import SHOP, click_path, open_path
from tests.dataflows.live import SHARDS, live_identify, now, profile, send
from tests.helpers import Process, RedisServer, free_port, running_dataflow, wait_for


@pytest.fixture
def dataflow(redis_server: RedisServer, tmp_path: Path) -> Iterator[Process]:
    with running_dataflow(redis_server.url, tmp_path / "df", stream_shards=str(SHARDS), contact_shards="16",
                          recovery="false") as process:
        yield process


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return mail_settings(free_port(), redis_url=redis_server.url, stream_shards=SHARDS, contact_shards=16,
                         rfm_refresh_s=0, api_port=free_port())


def test_a_reloaded_pixel_and_a_repeated_click_count_once_on_the_contact(
        dataflow: Process, settings: Settings, redis_client: redis.Redis) -> None:
    """Ada opens the e-mail three times and clicks one link twice: one open, one click on her profile."""
    send(redis_client, [live_identify("anon-7", "user-7", email="ada@example.com")])
    wait_for(lambda: profile(redis_client, "user-7"), 15, "Ada's profile")
    signer = LinkSigner.from_settings(settings)
    claims = claims_for(email_action(contact_id="user-7", user_id="user-7"))
    with TestClient(create_app(settings), follow_redirects=False) as api:
        for _ in range(3):
            assert api.get(open_path(signer, claims)).status_code == 200
        for _ in range(2):
            assert api.get(click_path(signer, SHOP, claims)).status_code == 302
        other_email = claims_for(email_action(action_id="act-0002", contact_id="user-7", user_id="user-7"))
        assert api.get(open_path(signer, other_email)).status_code == 200

    # A last event behind them on the same shard (routed by the same user id): once it is applied, all are.
    done = Track(event="Checked Mail", message_id=str(uuid.uuid4()), user_id="user-7", timestamp=now(),
                 received_at=now())
    send(redis_client, [done])

    def applied() -> Profile | None:
        found = profile(redis_client, "user-7")
        return found if found and found.windows.get("1h", {}).get("event", {}).get("Checked Mail") else None

    found = wait_for(applied, 15, "every event applied to Ada's profile")
    assert found is not None
    assert (found.counters.email_opens, found.counters.email_clicks) == (2, 1)
    assert dataflow.popen.poll() is None

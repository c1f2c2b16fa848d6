"""The real API process over HTTP: one Redis round trip per answer, and a push is the GET's answer byte for byte."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from websockets.asyncio.client import connect

from api.decisions.identity import sign_user_id
from state import keys
from state.decisions import DecisionDoc, encode_doc
from state.frames import DecisionPush, encode_push
from state.settings import Settings
from tests.api.decisions.store import SECRET, anonymous_doc, save_doc, shop
from tests.api.test_gateway import WRITE_KEY as GATEWAY_KEY
from tests.api.test_gateway import event, frame, reply, running_gateway
from tests.helpers import Process, RedisServer, free_port, start_process, wait_for

WRITE_KEY = "wk-http"
pytestmark = pytest.mark.timeout(90)


class Api:
    """`python -m api.cli api` on a free port."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def answers(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except urllib.error.URLError:
            return False

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path) -> Iterator[Api]:
    port = free_port()
    env = {"ATTIMO_REDIS_URL": redis_server.url, "ATTIMO_API_PORT": str(port), "ATTIMO_WRITE_KEY": WRITE_KEY,
           "ATTIMO_ADMIN_TOKEN": "admin", "ATTIMO_RFM_REFRESH_S": "0", "ATTIMO_IDENTITY_SECRETS": SECRET,
           "ATTIMO_DATA_DIR": str(tmp_path)}
    served = Api(start_process(["-m", "api.cli", "api"], env, tmp_path / "api.log"), port)
    try:
        wait_for(lambda: served.answers(), 20, "the API to answer")
        yield served
    finally:
        served.process.stop()


class Monitor:
    """Every command Redis runs while the block lasts (MONITOR), scripts' own calls included."""

    def __init__(self, client: redis.Redis) -> None:
        self.commands: list[dict[str, Any]] = []
        self._monitor = client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            for command in self._monitor.listen():
                self.commands.append(command)
        except (redis.ConnectionError, ValueError, AttributeError):
            pass

    def stop(self, marker: redis.Redis) -> list[dict[str, Any]]:
        marker.echo("monitor-end")
        wait_for(lambda: any("monitor-end" in c["command"] for c in self.commands), 5, "the marker")
        self._monitor.connection.disconnect()
        return [c for c in self.commands if "monitor-end" not in c["command"]]


class TestOneRoundTrip:
    """An answer is one EVALSHA; nothing reads the profile."""

    def test_each_answer_is_one_evalsha_and_the_profile_is_never_read(
            self, api: Api, redis_client: redis.Redis) -> None:
        """MONITOR over 20 answers: 20 EVALSHA from the API, each request's only command it waits for."""
        shop(redis_client)
        for n in range(20):
            save_doc(redis_client, anonymous_doc(f"anon-{n}"))
        assert api.get(f"/v1/decisions/anon-0?key={WRITE_KEY}")[0] == 200  # write key cached, script loaded
        monitor = Monitor(redis_client)
        for n in range(20):
            status, _ = api.get(f"/v1/decisions/anon-{n}?key={WRITE_KEY}")
            assert status == 200
        commands = monitor.stop(redis_client)
        readers = {(c["client_address"], c["client_port"]) for c in commands if c["command"].startswith("EVALSHA")}
        sent = [c["command"].split()[0].upper() for c in commands
                if (c["client_address"], c["client_port"]) in readers]
        inside = [c["command"] for c in commands if c["client_type"] == "lua"]
        assert sent.count("EVALSHA") == 20
        # Besides the reads, only the held-set bookkeeping, sent without waiting for its reply.
        assert set(sent) <= {"EVALSHA", "ZADD", "ZREMRANGEBYSCORE", "PEXPIRE"}, sent
        assert not [c for c in inside if keys.contact_profile("") .split("{")[0] in c]
        print(f"\n{len(sent)} commands for 20 answers: {sorted(set(sent))}; "
              f"{len(inside)} run inside the script")


class TestPushEqualsGet:
    """The gateway's `decision` frame carries exactly the bytes `GET /v1/decisions/{id}` answers."""

    async def test_a_pushed_decision_is_the_gets_answer_byte_for_byte(
            self, api: Api, redis_server: RedisServer, redis_client: redis.Redis) -> None:
        """Anonymous contact: the frame is `{"decision": <GET body>, "id": "anon-1"}`."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc())
        settings = Settings(redis_url=redis_server.url, write_key=GATEWAY_KEY, admin_token="admin",
                            gateway_port=free_port(), identity_secrets=SECRET)
        async with running_gateway(settings) as stream_url, connect(stream_url) as ws:
            await ws.send(frame(1, event("anon-1")))
            await reply(ws)
            redis_client.publish(keys.decision_push_channel(), encode_push(DecisionPush(
                ["anon-1"], msgspec.Raw(encode_doc(DecisionDoc(contact_id="anon-1"))))))
            pushed = await asyncio.wait_for(ws.recv(), 5)
        status, body = await asyncio.to_thread(api.get, f"/v1/decisions/anon-1?key={WRITE_KEY}")
        assert status == 200
        assert pushed == '{"decision":' + body.decode() + ',"id":"anon-1"}'

    async def test_a_signed_in_users_push_is_the_signed_gets_answer(
            self, api: Api, redis_server: RedisServer, redis_client: redis.Redis) -> None:
        """A socket that proved the user gets what `?sig=` gets; the GET without it is refused."""
        shop(redis_client)
        save_doc(redis_client, anonymous_doc("user-5", user_id="user-5", public={"temperature": "hot"}), "anon-5")
        sig = sign_user_id(SECRET, "user-5")
        settings = Settings(redis_url=redis_server.url, write_key=GATEWAY_KEY, admin_token="admin",
                            gateway_port=free_port(), identity_secrets=SECRET)
        async with running_gateway(settings) as stream_url, connect(f"{stream_url}&uid=user-5&sig={sig}") as ws:
            await ws.send(frame(1, event("anon-5", userId="user-5")))
            await reply(ws)
            redis_client.publish(keys.decision_push_channel(), encode_push(DecisionPush(
                ["anon-5", "user-5"], msgspec.Raw(encode_doc(DecisionDoc(contact_id="user-5"))))))
            pushed = await asyncio.wait_for(ws.recv(), 5)
        status, body = await asyncio.to_thread(api.get, f"/v1/decisions/anon-5?key={WRITE_KEY}&sig={sig}")
        assert status == 200 and pushed == '{"decision":' + body.decode() + ',"id":"anon-5"}'
        assert (await asyncio.to_thread(api.get, f"/v1/decisions/anon-5?key={WRITE_KEY}"))[0] == 401

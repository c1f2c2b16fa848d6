"""Dashboard login: the admin token is exchanged once for an HttpOnly, SameSite session cookie."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.dashboard.session import COOKIE
from state.settings import Settings
from tests.helpers import RedisServer, free_port

TOKEN = "dash-admin-token"
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TestClient]:
    settings = Settings(redis_url=redis_server.url, admin_token=TOKEN, write_key="wk-dash", api_port=free_port(),
                        rfm_refresh_s=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def log_in(client: TestClient, token: str = TOKEN) -> int:
    response = client.post("/dashboard/login", data={"token": token}, headers=ORIGIN, follow_redirects=False)
    return response.status_code


def test_pages_send_a_browser_without_a_session_to_the_login_form(client: TestClient) -> None:
    for path in ("/dashboard", "/dashboard/contacts", "/dashboard/config"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    form = client.get("/dashboard/login")
    assert form.status_code == 200 and 'name="token"' in form.text and 'method="post"' in form.text


def test_a_wrong_token_is_refused_and_sets_no_cookie(client: TestClient) -> None:
    response = client.post("/dashboard/login", data={"token": "guess"}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 401 and "not the admin token" in response.text
    assert COOKIE not in response.cookies
    assert client.get("/v1/admin/stats").status_code == 401


def test_login_sets_an_httponly_samesite_cookie_that_opens_pages_and_the_admin_api(client: TestClient) -> None:
    response = client.post("/dashboard/login", data={"token": TOKEN}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    set_cookie = response.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and TOKEN.lower() not in set_cookie
    page = client.get("/dashboard")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert client.get("/v1/admin/stats").status_code == 200  # the cookie, no bearer header


def test_a_cookie_write_from_another_site_is_refused(client: TestClient) -> None:
    assert log_in(client) == 303
    body = {"conditions": {"all": []}}
    foreign = client.put("/v1/admin/segments/s1", json=body, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 401


def test_logout_ends_the_session_on_the_server(client: TestClient) -> None:
    assert log_in(client) == 303
    stolen = client.cookies.get(COOKIE)
    client.post("/dashboard/logout", headers=ORIGIN, follow_redirects=False)
    client.cookies.set(COOKIE, stolen or "")
    assert client.get("/v1/admin/stats").status_code == 401
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_a_forged_cookie_opens_nothing(client: TestClient) -> None:
    client.cookies.set(COOKIE, "x" * 43)
    assert client.get("/v1/admin/stats").status_code == 401
    assert client.get("/dashboard", follow_redirects=False).status_code == 303

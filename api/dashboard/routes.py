"""The operators' dashboard: login, its pages, and the live numbers streamed every second.

Pages are static HTML + JS under `static/` (no template engine: nothing
from Redis is ever put into markup on the server; the scripts write it
as text nodes). Every page but the login needs a session
(`api.dashboard.session`); a browser without one is sent to the login
form. The scripts read the admin API with the session cookie, so each page
is a view over routes documented at `/docs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from api.dashboard.session import close_session, login_scopes, open_session, same_origin, session_scopes
from api.deps import RedisDep, SettingsDep

router = APIRouter(prefix="/dashboard", include_in_schema=False)

STATIC: Final = Path(__file__).parent / "static"
PAGES: Final = {"": "live.html", "contacts": "contacts.html", "config": "config.html"}
"""URL under /dashboard/ → the page's file."""
MAX_LOGIN_BODY: Final = 4096
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    # Not `no-referrer`: under it browsers send `Origin: null` on a form POST or a fetch write, which the
    # same-origin check (`session.same_origin`) must refuse, so the login form never logged anybody in.
    # `same-origin` still sends nothing to other sites.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


REFUSED_LOGIN: Final = (STATIC / "login.html").read_bytes().replace(
    b"<form", b'<p class="error" role="alert">That is not the admin token.</p>\n  <form', 1)
"""The login form again, saying why (the page is static: the message is put in here, once)."""


def _page(name: str, status: int = 200) -> Response:
    return FileResponse(STATIC / name, status_code=status, media_type="text/html", headers=SECURITY_HEADERS)


def _login_refused() -> Response:
    return Response(REFUSED_LOGIN, status_code=401, media_type="text/html", headers=SECURITY_HEADERS)


def _to_login() -> Response:
    return RedirectResponse("/dashboard/login", status_code=303, headers=SECURITY_HEADERS)


@router.get("/login")
async def login_form() -> Response:
    """The login form: one field, the admin token, sent in a POST body (never in the URL)."""
    return _page("login.html")


@router.post("/login")
async def login(request: Request, settings: SettingsDep, client: RedisDep) -> Response:
    """Exchange the admin token for a session cookie, then go to the live page."""
    body = await request.body()
    token = parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8", "replace")).get("token", [""])[0]
    if len(body) > MAX_LOGIN_BODY or not same_origin(request):
        return _login_refused()
    # The session carries the token's scopes: a read-only token's session cannot write.
    record = await login_scopes(client, token, settings.admin_token)
    if record is None:
        return _login_refused()
    response = RedirectResponse("/dashboard", status_code=303, headers=SECURITY_HEADERS)
    await open_session(client, response, request.url.scheme == "https", record.scopes, record.token_id)
    return response


@router.post("/logout")
async def logout(request: Request, client: RedisDep) -> Response:
    """End the session and go back to the login form."""
    response = _to_login()
    if same_origin(request):
        await close_session(client, request, response)
    return response


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """The pages' scripts, styles and vendored libraries (public: they hold no data)."""
    path = (STATIC / name).resolve()
    vendor = (STATIC / "vendor" / name).resolve()
    for candidate in (path, vendor):
        if candidate.parent in (STATIC.resolve(), (STATIC / "vendor").resolve()) and candidate.is_file():
            return FileResponse(candidate, headers={"Cache-Control": "no-cache"})
    return Response(status_code=404)


@router.get("")
@router.get("/{page}")
async def page(request: Request, client: RedisDep, page: str = "") -> Response:
    """A dashboard page for a logged-in operator; the login form for anybody else."""
    name = PAGES.get(page)
    if name is None:
        return Response(status_code=404)
    if await session_scopes(client, request) is None:
        return _to_login()
    return _page(name)

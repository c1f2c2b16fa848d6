"""Logging in to the operators' dashboard in headless Chromium, as an operator would: through the form."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Stack

WAIT_MS = 15_000


def log_in(browser: Any, stack: Stack, path: str = "/dashboard",
           viewport: dict[str, int] | None = None) -> tuple[Any, Any, list[str]]:
    """A new browser profile sent from `path` to the login form, logged in, then on `path`.

    Returns (context, page, every URL the page requested — to show the token
    was in none). The page's script errors collect in `page.page_errors`.
    """
    context = browser.new_context(viewport=viewport) if viewport else browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.page_errors = []
    page.on("pageerror", lambda error: page.page_errors.append(str(error)))
    page.goto(f"{stack.api_url}{path}")
    assert page.url.endswith("/dashboard/login"), page.url
    page.fill("#token", stack.admin_token)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{stack.api_url}/dashboard", page.url
    if path != "/dashboard":
        page.goto(f"{stack.api_url}{path}")
    assert page.url.startswith(f"{stack.api_url}{path}"), page.url
    return context, page, requested

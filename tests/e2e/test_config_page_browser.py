"""The configuration page on the real stack, in headless Chromium: log in through the form, preview a segment's
count, save it and see the same count of members; disable a workflow; a popup's per-variant stats — with the
admin token in no URL the browser ever asked for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, attimo_run
from tests.e2e.dashboard_browser import log_in as log_in_to
from tests.e2e.test_segment_preview_flow import call, seed
from tests.helpers import running_redis, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(120)]

WAIT_MS = 15_000
WELCOME: dict[str, Any] = {
    "name": "Welcome",
    "trigger": {"kind": "event", "match": {"event": "Signed Up"}},
    "steps": [{"kind": "webhook", "id": "hello", "endpoint": "esp", "next": "wait"},
              {"kind": "delay", "id": "wait", "seconds": 60, "next": "tips"},
              {"kind": "webhook", "id": "tips", "endpoint": "esp"}],
}
PROMO: dict[str, Any] = {
    "name": "Spring promo",
    "variants": [{"id": "ten-off", "content": {"title": "10 % off"}},
                 {"id": "free-ship", "content": {"title": "Free shipping"}}],
    "holdout_percent": 10,
}
RULES: list[dict[str, Any]] = [
    {"id": "pricing", "match": {"event": "page", "where": [{"name": "name", "value": "Pricing"}]}, "points": 10}]
TREE = {"kind": "any", "of": [{"kind": "trait", "name": "plan", "value": "silver"},
                              {"kind": "trait", "name": "plan", "value": "bronze"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`attimo run` with 16 contact shards, six known contacts and one visitor, a workflow and a campaign."""
    directory: Path = tmp_path_factory.mktemp("config-page")
    with running_redis(directory / "redis") as redis_server, \
            attimo_run(directory / "stack", redis_server, CONTACT_SHARDS="16") as running:
        seed(running)
        assert call(running, "PUT", "/v1/admin/workflows/welcome", WELCOME)[0] == 201
        assert call(running, "PUT", "/v1/admin/campaigns/promo", PROMO)[0] == 201
        assert call(running, "PUT", "/v1/admin/scoring/rules", RULES)[0] == 200
        yield running


def log_in(browser: Any, stack: Stack) -> tuple[Any, Any, list[str]]:
    """A new browser profile logged in through the form, on /dashboard/config; (context, page, URLs asked)."""
    return log_in_to(browser, stack, "/dashboard/config")


class TestConfigurationPage:
    def test_segment_preview_save_workflow_switch_and_popup_stats(self, stack: Stack, browser: Any) -> None:
        """Type a tree, preview shows 4, save, the list shows 4 members; a bad tree shows the API's 422 message;
        disable the workflow from the page and the API says disabled; edit a scoring rule's points and the API
        has them (a wrong type shows the 422); the campaign's arms render as rows."""
        context, page, requested = log_in(browser, stack)
        try:
            # -- segment: preview, then save, then the list's live count
            page.fill("#segment-id", "silver-or-bronze")
            page.fill("#segment-name", "Silver or bronze")
            page.fill("#segment-when", json.dumps(TREE))
            page.click("#segment-preview")
            page.wait_for_selector("#preview-count")
            previewed = page.text_content("#preview-count")
            status_line = page.text_content("#segment-status") or ""
            page.click("#segment-save")
            page.wait_for_function("() => /saved as configuration version \\d+$/.test("
                                   "document.getElementById('segment-status').textContent)", timeout=30_000)
            row = "tr[data-segment='silver-or-bronze'] td.members"
            page.wait_for_selector(row)
            wait_for(lambda: page.text_content(row) == previewed, 10, "the list's member count")
            # -- a bad tree: the API's message, naming the field, as text
            page.fill("#segment-when", json.dumps({"kind": "trait", "nmae": "plan"}))
            page.click("#segment-preview")
            page.wait_for_function("() => document.getElementById('segment-error').textContent.includes('nmae')")
            bad_message = page.text_content("#segment-error") or ""
            # -- workflow: disable from the page
            workflow = "[data-workflow='welcome']"
            page.wait_for_selector(f"{workflow} button.toggle")
            assert page.text_content(f"{workflow} .state") == "enabled"
            step_rows = page.locator(f"{workflow} tbody tr").count()
            page.click(f"{workflow} button.toggle")
            page.wait_for_function("() => document.querySelector(\"[data-workflow='welcome'] .state\")"
                                   ".textContent === 'disabled'")
            # -- scoring rules: listed, edited as JSON, saved; a refused change shows the API's message
            page.wait_for_selector("#scoring-list tbody tr")
            rule_row = page.evaluate("() => [...document.querySelector('#scoring-list tbody tr').children]"
                                     ".map((td) => td.textContent)")
            page.fill("#scoring-json", json.dumps([{**RULES[0], "points": 25}]))
            page.click("#scoring-save")
            page.wait_for_function("() => document.getElementById('scoring-status').textContent.startsWith('saved')")
            page.fill("#scoring-json", json.dumps([{**RULES[0], "points": "many"}]))
            page.click("#scoring-save")
            page.wait_for_function("() => document.getElementById('scoring-error').textContent.includes('points')")
            # -- popup stats: one row per variant plus the holdout
            page.wait_for_selector("[data-campaign='promo'] tbody tr")
            arms = page.evaluate("() => [...document.querySelectorAll(\"[data-campaign='promo'] tbody tr\")]"
                                 ".map((tr) => [...tr.children].map((td) => td.textContent))")
            errors = list(page.page_errors)
        finally:
            context.close()
        assert previewed == "4" and "of 7 contacts" in status_line  # cy, dee, eve (silver), fay (bronze)
        status, members = call(stack, "GET", "/v1/admin/segments/silver-or-bronze/members")
        assert status == 200 and members["count"] == 4
        assert "422" in bad_message and "nmae" in bad_message
        assert step_rows == 3
        assert rule_row[:4] == ["pricing", "page", 'name eq "Pricing"', "10"]
        assert call(stack, "GET", "/v1/admin/scoring/rules")[1][0]["points"] == 25
        status, workflow_now = call(stack, "GET", "/v1/admin/workflows/welcome")
        assert status == 200 and workflow_now["enabled"] is False
        assert [a[0] for a in arms] == ["ten-off", "free-ship", "holdout"], arms
        assert all(len(a) == 9 for a in arms) and arms[0][1] == "0"
        assert errors == []
        assert requested and not [url for url in requested if stack.admin_token in url]

"""A lint of the tracker's sources and built files: no HTML sink, no unchecked URL.

Popups and strips render decision content (configuration and event data)
with text nodes only. The browser tests show payloads stay inert; this
guards the code itself, so a later change cannot add an `innerHTML` that
no payload in the tests happens to reach.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.tracker_js.harness import DIST, TRACKER_DIR, WIDGETS

SOURCES = sorted((TRACKER_DIR / "src").glob("*.js"))

# Every API that parses a string as HTML or runs it as code.
SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser"
    r"|srcdoc|\beval\s*\(|new\s+Function\b|setTimeout\(\s*['\"`]|setInterval\(\s*['\"`]"
    r"|\.on[a-z]+\s*=(?!=)"  # an inline handler property (el.onclick = ...), the socket's excepted below
)
# The socket's own handlers are functions of this file, not markup.
ALLOWED_HANDLERS = re.compile(r"sock\.on(open|message|close)\s*=")
ATTRIBUTES = {"role", "aria-labelledby", "aria-modal", "aria-label", "data-attimo-count"}


def code_of(path: Path) -> str:
    """The file without its comments (comments may name the sinks they avoid)."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(^|[^:\\])//[^\n]*", r"\1", text)


class TestNoHtmlSinks:
    @pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
    def test_no_source_uses_an_html_or_code_sink(self, path: Path) -> None:
        """No innerHTML / outerHTML / insertAdjacentHTML / document.write / eval / inline handlers in src/."""
        code = ALLOWED_HANDLERS.sub("", code_of(path))
        assert SINKS.findall(code) == []

    @pytest.mark.parametrize("bundle", [DIST, WIDGETS], ids=lambda p: p.name)
    def test_no_built_file_contains_one(self, tracker_dist: Path, bundle: Path) -> None:
        """The shipped files hold none either (a dependency or the bundler could add one)."""
        code = re.sub(r"\w+\.on(open|message|close)=", "", bundle.read_text())
        assert SINKS.findall(code) == []

    @pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
    def test_attributes_set_are_fixed_names_and_urls_are_checked_first(self, path: Path) -> None:
        """setAttribute only with literal, harmless names; every href/src assigned is a checked URL."""
        code = code_of(path)
        names = re.findall(r"setAttribute\(\s*([^,]+),", code)
        assert all(n.strip("'\"") in ATTRIBUTES and n[0] in "'\"" for n in names), names
        for var in re.findall(r"\.(?:href|src)\s*=\s*([A-Za-z_$][\w$]*)", code):
            checked = re.search(rf"\b{re.escape(var)}\s*=\s*safeUrl\(", code)
            # The one exception: index.js loads the widgets file from the script tag's own settings.
            from_config = path.name == "index.js" and re.search(rf"\b{re.escape(var)}\s*=\s*widgetsUrl\(", code)
            assert checked or from_config, f"{path.name}: .href/.src = {var} is not from safeUrl()"

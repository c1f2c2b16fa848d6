"""Putting Attimo's links into a rendered e-mail: clicks through the redirect, the open pixel, unsubscribe.

Only absolute http(s) links of `<a>` and `<area>` tags in the HTML part are
rewritten (not `mailto:`, `tel:`, anchors or relative links, and not links
over `MAX_LINK_URL_CHARS`); the plain-text part keeps its links as written,
so a text-only reader's clicks are not counted. The unsubscribe link goes
where the template wrote `{{unsubscribe_url}}`, else into a footer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Final

from api.email.links import MAX_LINK_URL_CHARS
from state.templates import UNSUBSCRIBE_URL_MARKER

_ANCHOR_HREF: Final = re.compile(
    r"""(<(?:a|area)\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_HTTP: Final = re.compile(r"https?://[^\s/?#]+", re.IGNORECASE)
_BODY_END: Final = re.compile(r"</body\s*>", re.IGNORECASE)


def trackable(url: str) -> bool:
    """Whether a link may go through the click redirect: an absolute http(s) URL of bounded length."""
    return len(url) <= MAX_LINK_URL_CHARS and _HTTP.match(url) is not None and not any(
        ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url)


def rewrite_links(body: str, redirect: Callable[[str], str]) -> str:
    """Each trackable link's href replaced by `redirect(original URL)` (entities in the href decoded first)."""
    def replace(match: re.Match[str]) -> str:
        raw = next(group for group in match.groups()[1:] if group is not None)
        url = html.unescape(raw)
        if not trackable(url):
            return match.group(0)
        return f'{match.group(1)}"{html.escape(redirect(url), quote=True)}"'

    return _ANCHOR_HREF.sub(replace, body)


def _before_body_end(body: str, snippet: str) -> str:
    ends = list(_BODY_END.finditer(body))
    if not ends:
        return body + snippet
    at = ends[-1].start()
    return body[:at] + snippet + body[at:]


def add_pixel(body: str, pixel_url: str) -> str:
    """The HTML with a 1×1 image at the end of its body: loading it is an open."""
    img = (f'<img src="{html.escape(pixel_url, quote=True)}" width="1" height="1" alt="" '
           'style="display:block;border:0;width:1px;height:1px">')
    return _before_body_end(body, img)


def add_unsubscribe(body: str, url: str, is_html: bool) -> str:
    """The body with its unsubscribe link: at each `{{unsubscribe_url}}`, else in a footer."""
    shown = html.escape(url, quote=True) if is_html else url
    if UNSUBSCRIBE_URL_MARKER in body:
        return body.replace(UNSUBSCRIBE_URL_MARKER, shown)
    if is_html:
        return _before_body_end(body, f'<p style="font-size:12px;color:#666666"><a href="{shown}">'
                                      "Unsubscribe</a> from these e-mails.</p>")
    return f"{body.rstrip()}\n\n--\nUnsubscribe from these e-mails: {shown}\n"

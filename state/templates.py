"""E-mail templates: a small, logic-less renderer (a Mustache subset) that cannot run code.

The dataflow renders a workflow's e-mail for one contact when it decides
the action (`render_email`); the API (the admin API checking a template,
the e-mail sender) reads the same syntax, so it lives here.

Syntax — a tag is `{{ … }}`, spaces inside it are ignored:

- `{{contact.traits.first_name}}`: the value at a dotted path (mapping keys,
  list positions: `{{cart.0.name}}`); a missing value is empty.
- `{{price | money}}`: the value through filters, left to right (below).
- `{{#cart}}…{{/cart}}`: for a list, the block once per item with the
  item's fields in scope (`{{.}}` is the item itself); for any other
  non-empty value, the block once (a mapping's fields in scope); for an
  empty one (missing, null, `""`, `false`, `0`, `[]`, `{}`), nothing.
- `{{^cart}}…{{/cart}}`: the block only when the value is empty.
- `{{! a comment }}`: nothing.

Filters: `money` (a number with two decimals), `upper`, `lower`, `url` (the
value only if it is an absolute http(s) URL, else empty: use it for links
built from data), `default:TEXT` (TEXT when the value is missing, null or `""`).

What makes it safe: a path only indexes mappings (by key) and lists (by
position) — never an attribute, a method or a call — so a template can read
the context and nothing else; values are never parsed as templates; in HTML
every value is escaped (`&`, `<`, `>`, `"`, `'`), so a trait cannot inject
markup or leave an attribute. There is no unescaped output. Templates and
their output are bounded (`MAX_TEMPLATE_CHARS`, `MAX_DEPTH`,
`MAX_OUTPUT_CHARS`); a template past them, or not well formed, raises
`TemplateError` saying where.

The e-mail context (`context_for`): `contact` (`contact_id`, `user_id`,
`email`, `traits`), `cart` (lines: `product_id`, `name`, `category`, `price`,
`quantity`), `cart_value`, `products` (the payload's, else the products
the contact engaged with most lately: `product_id`, `events`, `category`),
`trigger` (the properties of the event that entered the contact: an
order's `products`, `order_id` …), `coupon` (from the action's payload),
`payload`, `workflow` (`id`, `version`, `step`, `branch`) and
`unsubscribe_url` (a marker the sender replaces with the contact's signed
unsubscribe link; a body without it gets an unsubscribe footer).
"""

from __future__ import annotations

import html as html_lib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final

import msgspec

from state.actions import Action, EmailContent
from state.errors import AttimoError

MAX_TEMPLATE_CHARS: Final = 100_000
MAX_DEPTH: Final = 16
MAX_OUTPUT_CHARS: Final = 1_000_000
# What `{{unsubscribe_url}}` renders to; the sender swaps in the real link. Escaping leaves it unchanged.
UNSUBSCRIBE_URL_MARKER: Final = "%%attimo-unsubscribe-url%%"

_TAG: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH: Final = re.compile(r"[\w@-]+(?:\.[\w@-]+)*|\.")
_URL: Final = re.compile(r"https?://[^\s/?#<>\"']+[^\s<>\"']*", re.IGNORECASE)
_FILTERS: Final = frozenset({"money", "upper", "lower", "url", "default"})
_MISSING: Final = object()


class TemplateError(AttimoError, ValueError):
    """A template that cannot be parsed, or whose output would be too large."""


@dataclass(frozen=True, slots=True)
class _Filter:
    name: str
    argument: str = ""


@dataclass(frozen=True, slots=True)
class _Value:
    path: tuple[str, ...]
    filters: tuple[_Filter, ...]


@dataclass(frozen=True, slots=True)
class _Section:
    path: tuple[str, ...]
    inverted: bool
    body: tuple[_Node, ...]


_Node = str | _Value | _Section


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: render it with any number of contexts."""

    nodes: tuple[_Node, ...]

    def render(self, context: Mapping[str, Any], html: bool) -> str:
        """The template filled in from `context`; values HTML-escaped when `html`."""
        out = _Output()
        _render(self.nodes, [{"unsubscribe_url": UNSUBSCRIBE_URL_MARKER}, context], html, out)
        return "".join(out.parts)


class _Output:
    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT_CHARS:
            raise TemplateError(f"the rendered text would exceed {MAX_OUTPUT_CHARS} characters")
        self.parts.append(text)


def _path(text: str, where: str) -> tuple[str, ...]:
    if not _PATH.fullmatch(text):
        raise TemplateError(f"{where}: {text!r} is not a name (letters, digits, _ - @, dots between)")
    return (".",) if text == "." else tuple(text.split("."))


def _value_tag(text: str, where: str) -> _Value:
    name, *raw_filters = (part.strip() for part in text.split("|"))
    filters = []
    for raw in raw_filters:
        filter_name, _, argument = raw.partition(":")
        filter_name = filter_name.strip()
        if filter_name not in _FILTERS:
            raise TemplateError(f"{where}: unknown filter {filter_name!r} (known: {', '.join(sorted(_FILTERS))})")
        filters.append(_Filter(filter_name, argument.strip()))
    return _Value(_path(name, where), tuple(filters))


@lru_cache(maxsize=512)
def parse(template: str) -> Template:
    """Parse a template, or raise TemplateError saying where it is wrong (for checking one before saving it)."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template is {len(template)} characters; at most {MAX_TEMPLATE_CHARS} allowed")
    stack: list[tuple[str, tuple[str, ...], bool, list[_Node]]] = [("", (), False, [])]
    position = 0
    for match in _TAG.finditer(template):
        where = f"line {template.count(chr(10), 0, match.start()) + 1}"
        if match.start() > position:
            stack[-1][3].append(template[position:match.start()])
        position = match.end()
        tag = match.group(1).strip()
        sigil, rest = tag[:1], tag[1:].strip()
        if sigil == "!":
            continue
        if sigil in ("#", "^"):
            if len(stack) > MAX_DEPTH:
                raise TemplateError(f"{where}: sections nested deeper than {MAX_DEPTH}")
            stack.append((rest, _path(rest, where), sigil == "^", []))
        elif sigil == "/":
            name, path, inverted, body = stack[-1]
            if len(stack) == 1 or rest != name:
                raise TemplateError(f"{where}: {{{{/{rest}}}}} closes no open section"
                                    + (f" (open: {name!r})" if len(stack) > 1 else ""))
            stack.pop()
            stack[-1][3].append(_Section(path, inverted, tuple(body)))
        else:
            stack[-1][3].append(_value_tag(tag, where))
    if len(stack) > 1:
        raise TemplateError(f"section {stack[-1][0]!r} is never closed")
    if "{{" in template[position:]:
        raise TemplateError("a '{{' is never closed by '}}'")
    if position < len(template):
        stack[0][3].append(template[position:])
    return Template(tuple(stack[0][3]))


def render(template: str, context: Mapping[str, Any], html: bool) -> str:
    """Render `template` with `context`; in HTML (`html=True`) every value is escaped."""
    return parse(template).render(context, html)


def _lookup(scopes: Sequence[Any], path: tuple[str, ...]) -> Any:
    if path == (".",):
        return scopes[-1]
    head, *rest = path
    for scope in reversed(scopes):
        if isinstance(scope, Mapping) and head in scope:
            value = scope[head]
            break
    else:
        return _MISSING
    for part in rest:
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list | tuple) and part.isascii() and part.isdigit() and len(part) <= 9 \
                and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _is_blank(value: Any) -> bool:
    """Missing, null or the empty string: what `default:` replaces."""
    return value is _MISSING or value is None or (isinstance(value, str) and not value)


def _is_empty(value: Any) -> bool:
    """What a section skips (and an inverted section shows): blank, false, zero, an empty list or mapping."""
    if isinstance(value, bool | int | float):
        return not value
    return _is_blank(value) or (isinstance(value, Mapping | list | tuple) and not value)


def _text(value: Any) -> str:
    """A value as text: JSON scalars and times only; anything else (structures, objects) is empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return ""


def _apply(value: Any, flt: _Filter) -> Any:
    if flt.name == "default":
        return flt.argument if _is_blank(value) else value
    if flt.name == "money":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return f"{value:.2f}"
        return value
    text = _text(value)
    if flt.name == "upper":
        return text.upper()
    if flt.name == "lower":
        return text.lower()
    return text if _URL.fullmatch(text) else ""  # url


def _render(nodes: tuple[_Node, ...], scopes: list[Any], html: bool, out: _Output) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.add(node)
        elif isinstance(node, _Value):
            value = _lookup(scopes, node.path)
            for flt in node.filters:
                value = _apply(value, flt)
            text = "" if value is _MISSING else _text(value)
            out.add(html_lib.escape(text, quote=True) if html else text)
        else:
            value = _lookup(scopes, node.path)
            if node.inverted:
                if _is_empty(value):
                    _render(node.body, scopes, html, out)
            elif isinstance(value, list | tuple):
                for item in value:
                    _render(node.body, [*scopes, item], html, out)
            elif not _is_empty(value):
                _render(node.body, [*scopes, value], html, out)


def context_for(action: Action) -> dict[str, Any]:
    """The names an e-mail template of this action can use (see the module docstring)."""
    payload = action.payload
    cart = msgspec.to_builtins(action.cart)
    return {
        "contact": msgspec.to_builtins(action.contact),
        "cart": cart,
        "cart_value": round(sum(line.price * line.quantity for line in action.cart), 2),
        "products": payload.get("products") or msgspec.to_builtins(action.products),
        "trigger": action.trigger,
        "coupon": payload.get("coupon"),
        "payload": payload,
        "workflow": {"id": action.workflow_id, "version": action.workflow_version, "step": action.step_id,
                     "branch": action.branch},
    }


def render_email(action: Action, subject: str, text: str, html: str | None = None) -> EmailContent:
    """Render an e-mail's templates for the action's contact (the `email` of an e-mail action).

    The subject is rendered as text on one line (line breaks become spaces,
    so a value cannot add a header). Raises TemplateError for a broken
    template or a contact without an e-mail address.
    """
    if not action.contact.email:
        raise TemplateError(f"contact {action.contact.contact_id!r} has no e-mail address")
    context = context_for(action)
    rendered_subject = " ".join(render(subject, context, html=False).split())
    return EmailContent(to=action.contact.email, subject=rendered_subject, text=render(text, context, html=False),
                        html=None if html is None else render(html, context, html=True))

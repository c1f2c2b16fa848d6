"""The e-mail template renderer: what the syntax means, and that a template can neither inject markup nor run code."""

from __future__ import annotations

import html
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from state.actions import Action, ActionContact, ProductInterest
from state.profile import CartLine
from state.templates import (
    MAX_DEPTH,
    MAX_OUTPUT_CHARS,
    MAX_TEMPLATE_CHARS,
    UNSUBSCRIBE_URL_MARKER,
    TemplateError,
    context_for,
    parse,
    render,
    render_email,
)
from tests.state.event_strategies import fuzz_settings

CONTEXT: dict[str, Any] = {
    "contact": {"email": "ada@example.com", "traits": {"first_name": "Ada", "vip": True, "orders": 0}},
    "cart": [{"name": "Trail shoe", "price": 59.0, "quantity": 1}, {"name": "Socks", "price": 4.5, "quantity": 3}],
    "coupon": {"code": "WELCOME10"},
    "products": [],
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


class TestSyntax:
    """Values, sections, inverted sections, filters and comments do what the module docstring says."""

    def test_a_dotted_path_reads_nested_values_and_a_missing_one_is_empty(self) -> None:
        """`{{a.b.c}}` walks mappings; an unknown name renders nothing rather than failing."""
        assert render("Hi {{ contact.traits.first_name }}{{contact.traits.nope}}!", CONTEXT, html=False) == "Hi Ada!"

    def test_a_list_section_repeats_per_item_with_the_item_in_scope(self) -> None:
        """`{{#cart}}` renders once per line, line fields by name, outer names still visible."""
        template = "{{#cart}}{{name}} x{{quantity}} {{price | money}} for {{contact.traits.first_name}};{{/cart}}"
        assert render(template, CONTEXT, html=False) == "Trail shoe x1 59.00 for Ada;Socks x3 4.50 for Ada;"

    def test_list_positions_and_the_current_item(self) -> None:
        """`{{cart.0.name}}` is the first line's name; `{{.}}` is the item itself."""
        assert render("{{cart.0.name}}|{{cart.5.name}}", CONTEXT, html=False) == "Trail shoe|"
        assert render("{{#tags}}[{{.}}]{{/tags}}", {"tags": ["a", "b"]}, html=False) == "[a][b]"

    def test_a_value_section_renders_once_with_its_fields_and_empty_values_skip_it(self) -> None:
        """A mapping opens its fields; missing, null, false, 0, "" and [] skip the block."""
        assert render("{{#coupon}}Code {{code}}{{/coupon}}", CONTEXT, html=False) == "Code WELCOME10"
        empties: tuple[Any, ...] = (None, False, 0, "", [], {})
        for empty in empties:
            assert render("{{#x}}shown{{/x}}", {"x": empty}, html=False) == ""
        assert render("{{#x}}shown{{/x}}", {}, html=False) == ""

    def test_an_inverted_section_renders_only_for_empty_values(self) -> None:
        """`{{^products}}` is the fallback when there is nothing to list."""
        template = ("{{^products}}No picks yet{{/products}}"
                    "{{^contact.traits.orders}}, first order!{{/contact.traits.orders}}")
        assert render(template, CONTEXT, html=False) == "No picks yet, first order!"
        assert render("{{^cart}}empty{{/cart}}", CONTEXT, html=False) == ""

    def test_filters(self) -> None:
        """money, upper, lower, url and default, applied left to right."""
        context = {"name": "Ada", "blank": "", "price": 5, "site": "https://shop.example/x?a=1",
                   "evil": "javascript:alert(1)"}
        assert render("{{price|money}} {{name|upper}} {{name | lower}}", context, html=False) == "5.00 ADA ada"
        assert render("{{blank|default:friend}} {{missing | default: there }}", context, html=False) == "friend there"
        assert render("[{{site|url}}] [{{evil|url}}]", context, html=False) == "[https://shop.example/x?a=1] []"
        assert render("{{missing|default:x|upper}}", context, html=False) == "X"

    def test_comments_render_nothing_and_numbers_render_plainly(self) -> None:
        """`{{! … }}` disappears; 59.0 is "59", 4.5 stays "4.5", booleans are true/false."""
        assert render("a{{! note }}b", {}, html=False) == "ab"
        assert render("{{a}} {{b}} {{c}} {{d}}", {"a": 59.0, "b": 4.5, "c": True, "d": float("nan")},
                      html=False) == "59 4.5 true "

    def test_structures_render_as_nothing(self) -> None:
        """A mapping or list in a value tag is not dumped into the e-mail."""
        assert render("[{{contact}}][{{cart}}]", CONTEXT, html=False) == "[][]"

    def test_unsubscribe_url_is_the_marker_the_sender_replaces(self) -> None:
        """Templates name the unsubscribe link without knowing it; the context cannot fake it away."""
        assert render('<a href="{{unsubscribe_url}}">', {}, html=True) == f'<a href="{UNSUBSCRIBE_URL_MARKER}">'


class TestErrors:
    """A broken template is refused when parsed, saying where."""

    @pytest.mark.parametrize(("template", "message"), [
        ("{{#cart}}open", "never closed"),
        ("{{/cart}}", "closes no open section"),
        ("{{#a}}{{/b}}", "closes no open section"),
        ("{{name|shout}}", "unknown filter"),
        ("{{ first name }}", "not a name"),
        ("{{}}", "not a name"),
        ("Hello {{name", "never closed"),
        ("{{{raw}}}", "not a name"),
        ("line one\n{{#}}", "line 2"),
    ])
    def test_broken_templates_raise_template_error(self, template: str, message: str) -> None:
        with pytest.raises(TemplateError, match=message):
            parse(template)

    def test_bounds(self) -> None:
        """Template size, section depth and output size are bounded, so rendering cannot run away."""
        with pytest.raises(TemplateError, match="characters"):
            parse("x" * (MAX_TEMPLATE_CHARS + 1))
        deep = "{{#a}}" * (MAX_DEPTH + 1) + "{{/a}}" * (MAX_DEPTH + 1)
        with pytest.raises(TemplateError, match="nested"):
            parse(deep)
        nested = "{{#l}}{{#l}}{{#l}}{{#l}}{{v}}{{/l}}{{/l}}{{/l}}{{/l}}"
        with pytest.raises(TemplateError, match="exceed"):
            render(nested, {"l": list(range(40)), "v": "x" * 1000}, html=False)
        assert MAX_OUTPUT_CHARS < 40**4 * 1000


class TestSafety:
    """Values are data: escaped in HTML, never parsed, never a way into Python."""

    def test_html_special_characters_in_values_are_escaped_in_html_only(self) -> None:
        """A trait cannot add markup or break out of an attribute; plain text keeps it as written."""
        context = {"name": "<script>alert('x')</script>", "q": '" onmouseover="steal()'}
        assert render("<b>{{name}}</b><a title=\"{{q}}\">", context, html=True) == (
            "<b>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</b><a title=\"&quot; onmouseover=&quot;steal()\">")
        assert render("{{name}}", context, html=False) == "<script>alert('x')</script>"

    def test_a_value_that_looks_like_a_template_is_not_rendered(self) -> None:
        """`{{contact.email}}` inside a trait stays literal text."""
        context = {"name": "{{contact.email}}", "contact": {"email": "secret@example.com"}}
        assert render("{{name}}", context, html=False) == "{{contact.email}}"

    def test_paths_cannot_reach_attributes_methods_or_dunders(self) -> None:
        """Only mapping keys and list positions are followed: no `__class__`, no method, no call."""
        calls: list[str] = []

        class Trap:
            def __getattr__(self, name: str) -> Any:
                calls.append(name)
                return lambda *args: calls.append("called")

            def __str__(self) -> str:
                calls.append("str")
                return "trap"

        context = {"obj": Trap(), "text": "abc", "items": [1, 2]}
        template = ("{{obj}}{{obj.__class__}}{{obj.__init__.__globals__}}{{text.upper}}{{text.__len__}}"
                    "{{items.append}}{{items.__class__.__mro__}}{{#obj}}{{__class__}}{{/obj}}{{cart.__len__}}")
        assert render(template, context, html=True) == ""
        assert calls == []

    @fuzz_settings(200)
    @given(value=st.text())
    def test_any_text_in_html_renders_to_something_that_unescapes_to_itself(self, value: str) -> None:
        """Escaping is complete: no raw `<`, `>`, quotes or unescaped `&` survive, and nothing is lost."""
        out = render("<p title=\"{{v}}\">{{v}}</p>", {"v": value}, html=True)
        inner = out[len('<p title="'):out.index('">')]
        assert not set("<>\"'") & set(inner)
        assert html.unescape(inner) == value

    @fuzz_settings(200)
    @given(template=st.text(alphabet=st.sampled_from(list("{}#^/!|.: abx_0")), max_size=40), context=JSON)
    def test_any_template_renders_or_is_refused_with_template_error(self, template: str, context: Any) -> None:
        """Whatever the template and the JSON context, the outcome is text or a TemplateError — nothing else."""
        try:
            out = render(template, {"a": context, "b": [context, context]}, html=True)
        except TemplateError:
            return
        assert isinstance(out, str)


class TestEmail:
    """`render_email` turns an action's templates into the `EmailContent` the sender sends."""

    def action(self, email: str | None = "ada@example.com", **traits: Any) -> Action:
        contact = ActionContact(contact_id="user-7", user_id="user-7", email=email, traits=traits)
        return Action(id="act-1", kind="email", channel="email", contact=contact, workflow_id="abandoned-cart",
                      workflow_version=3, step_id="reminder-1", created_at=0.0,
                      cart=[CartLine(product_id="sku-1", name="Trail shoe", price=59.0, quantity=2)],
                      payload={"coupon": {"code": "BACK10"}, "products": [{"name": "Socks"}]})

    def test_the_context_names_contact_cart_products_coupon_and_workflow(self) -> None:
        context = context_for(self.action(first_name="Ada"))
        assert context["contact"]["traits"] == {"first_name": "Ada"}
        assert context["cart"][0]["name"] == "Trail shoe" and context["cart_value"] == 118.0
        assert context["coupon"] == {"code": "BACK10"} and context["products"] == [{"name": "Socks"}]
        assert context["workflow"]["id"] == "abandoned-cart" and context["workflow"]["step"] == "reminder-1"

    def test_without_payload_products_the_engaged_products_and_the_trigger_are_named(self) -> None:
        action = msgspec.structs.replace(
            self.action(), payload={}, products=[ProductInterest(product_id="sku-9", events=3, category="bags")],
            trigger={"order_id": "o-1", "products": [{"product_id": "sku-1", "category": "shoes"}]})
        content = render_email(action, "Order {{trigger.order_id}}",
                               "{{#trigger.products}}{{category}} {{/trigger.products}}|"
                               "{{#products}}{{product_id}}×{{events}}{{/products}}")
        assert (content.subject, content.text) == ("Order o-1", "shoes |sku-9×3")

    def test_subject_text_and_html_are_rendered_for_the_contact(self) -> None:
        content = render_email(self.action(first_name="<Ada>"), "{{contact.traits.first_name}}, your cart",
                               "{{#cart}}{{name}}{{/cart}} {{coupon.code}}",
                               "<p>{{contact.traits.first_name}}</p>")
        assert content.to == "ada@example.com"
        assert content.subject == "<Ada>, your cart"
        assert content.text == "Trail shoe BACK10"
        assert content.html == "<p>&lt;Ada&gt;</p>"

    def test_a_subject_stays_on_one_line_whatever_the_values(self) -> None:
        """A trait with line breaks cannot start a new header."""
        content = render_email(self.action(first_name="Ada\r\nBcc: victim@example.com"),
                               "Hi {{contact.traits.first_name}}", "text")
        assert "\n" not in content.subject and "\r" not in content.subject
        assert content.subject == "Hi Ada Bcc: victim@example.com"

    def test_a_contact_without_an_email_address_cannot_get_an_email(self) -> None:
        with pytest.raises(TemplateError, match="no e-mail address"):
            render_email(self.action(email=None), "s", "t")

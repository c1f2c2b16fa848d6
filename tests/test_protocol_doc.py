"""`docs/protocol.md` keeps up with the code wherever that can be checked mechanically.

The document is what shop developers and operators read to talk to Attimo;
these tests fail when a close code, a status, a message field, a route, a
Redis key or a protocol setting is added or renamed in the code without the
document following. No Redis is needed: the app is built, never started.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, get_args

import msgspec
import pytest

from api import errors
from api.app import create_app
from api.deps import WRITE_KEY_HEADER
from api.gateway.server import STREAM_PATH
from api.models import ErrorBody, IngestOk, IngestPartial
from api.workflow_models import WorkflowBody
from state import events, keys, streams
from state.config import ActiveConfig
from state.config_rules import config_problem
from state.config_store import ConfigControl
from state.decisions import DecisionDoc, PopupDecision, ProductCard, PublicDecisions
from state.frames import Ack, DecisionFrame, DecisionPush, FrameError, RateLimited, RejectedEvent
from state.json_bounds import MAX_DEPTH
from state.profile import Profile
from state.quarantine import QuarantineRecord, Stage
from state.segment_changes import SegmentChange
from state.settings import Settings
from state.validation import BLOCKED_IDS, MAX_AMOUNT, MAX_QUANTITY, MAX_SEQ, NUMERIC_PROPERTIES, Frame, HttpBatch
from state.workflows import Trigger, Workflow
from state.writekeys import WriteKey

ROOT: Final = Path(__file__).resolve().parents[1]
DOC: Final = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
LINES: Final = DOC.splitlines()
_SENTINEL: Final = "\x00"


def json_names(kind: type[msgspec.Struct]) -> list[str]:
    """A Struct's field names as they appear on the wire (after `rename` / `name=`)."""
    return [field.encode_name for field in msgspec.structs.fields(kind)]


def module_path(kind: type) -> str:
    """`state/frames.py` for `state.frames.Ack`."""
    return kind.__module__.replace(".", "/") + ".py"


def route_paths(routes: Iterable[Any]) -> Iterator[tuple[str, frozenset[str]]]:
    """(path, methods) of every route, included routers flattened."""
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield path, frozenset(getattr(route, "methods", None) or ())
        elif hasattr(route, "effective_route_contexts"):  # FastAPI ≥ 0.16x keeps included routers lazy
            for context in route.effective_route_contexts():
                methods = getattr(context.original_route, "methods", None) or ()
                yield context.path, frozenset(methods)
        elif hasattr(route, "routes"):
            yield from route_paths(route.routes)


def path_pattern(path: str) -> re.Pattern[str]:
    """A route path as the document may write it: any name inside `{…}`, nothing longer after it."""
    parts = re.split(r"\{[^}]+\}", path)
    body = r"\{[^}]+\}".join(re.escape(part) for part in parts)
    return re.compile(body + r"(?![\w/{-])")


def key_pattern(build: Any) -> re.Pattern[str]:
    """A Redis key builder's output as the document writes it, a placeholder standing for each argument."""
    arity = len(inspect.signature(build).parameters)
    key = build(*([_SENTINEL] * arity))
    parts = key.split(_SENTINEL)
    return re.compile(r"[^`\s]+".join(re.escape(part) for part in parts) + r"(?![\w:{-])")


def power_of_ten(value: float) -> str:
    """`1e12` for 10¹², as the document writes a ceiling."""
    exponent = round(math.log10(value))
    assert value == 10**exponent, f"{value} is not a power of ten"
    return f"1e{exponent}"


def documented_default(value: object) -> str:
    """A setting's default as the settings table writes it (integral floats without `.0`)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class TestCodesAndStatuses:
    """Every code a client can receive is in the document."""

    @pytest.mark.parametrize("name", sorted(n for n in vars(errors) if n.startswith("CLOSE_")))
    def test_every_close_code_is_documented_with_its_constant(self, name: str) -> None:
        code = getattr(errors, name)
        rows = [line for line in LINES if f"`{code}`" in line and name in line]
        assert rows, f"close code {code} ({name}) is not in a row of docs/protocol.md naming it"

    @pytest.mark.parametrize("status", sorted({status for _, status in errors.HTTP_STATUS}))
    def test_every_mapped_http_status_is_documented(self, status: int) -> None:
        assert f"`{status}`" in DOC, f"HTTP status {status} of api.errors.HTTP_STATUS is not documented"

    def test_the_status_and_close_code_tables_are_named(self) -> None:
        assert "HTTP_STATUS" in DOC and "WS_CLOSE_CODE" in DOC


class TestMessages:
    """Every message crossing a process boundary is documented field by field, with its module."""

    @pytest.mark.parametrize("kind", [Ack, RejectedEvent, FrameError, RateLimited, DecisionFrame, DecisionPush,
                                      SegmentChange, QuarantineRecord, ConfigControl, PublicDecisions, PopupDecision,
                                      ProductCard, DecisionDoc, Profile, WriteKey, Frame,
                                      HttpBatch, ErrorBody, IngestOk, IngestPartial])
    def test_every_message_names_its_module_and_its_json_fields(self, kind: type[msgspec.Struct]) -> None:
        """The Struct, the module that defines it and each of its fields (by JSON name) are in the document."""
        assert f"`{kind.__name__}`" in DOC, f"{kind.__name__} is not named"
        assert module_path(kind) in DOC, f"{kind.__name__}'s module {module_path(kind)} is not cited"
        missing = [name for name in json_names(kind) if f"`{name}`" not in DOC and f'"{name}"' not in DOC]
        assert not missing, f"{kind.__name__} fields missing from docs/protocol.md: {missing}"

    def test_segment_change_id_is_documented_by_its_json_name(self) -> None:
        assert "id" in json_names(SegmentChange)
        assert '"id":"' in DOC

    def test_every_event_type_and_internal_type_is_documented(self) -> None:
        tags = [*events.EVENT_TYPES, events.TagsChanged.__struct_config__.tag,
                events.ListChanged.__struct_config__.tag]
        missing = [tag for tag in tags if f"`{tag}`" not in DOC]
        assert not missing, f"event types missing: {missing}"

    def test_every_event_name_attimo_understands_is_documented(self) -> None:
        names = [value for name, value in vars(events).items()
                 if name.isupper() and isinstance(value, str) and name != "RESERVED_EVENT_PREFIX"]
        assert names, "no event name constants found in state.events"
        missing = [name for name in names if f"`{name}`" not in DOC]
        assert not missing, f"event names missing: {missing}"

    def test_every_quarantine_stage_is_documented(self) -> None:
        missing = [stage for stage in get_args(Stage) if f"`{stage}`" not in DOC]
        assert not missing, f"quarantine stages missing: {missing}"

    def test_stream_entry_fields_are_documented(self) -> None:
        for field in (streams.ENTRY_FIELD, streams.CONTROL_FIELD):
            assert f"**`{field.decode()}`**" in DOC, f"stream field {field!r} is not documented"


class TestBounds:
    """The limits enforced at the edge are the ones the document states."""

    def test_validation_bounds_are_stated(self) -> None:
        assert f"{MAX_DEPTH} levels" in DOC
        assert f"`{power_of_ten(MAX_AMOUNT)}`" in DOC
        assert f"`{power_of_ten(MAX_QUANTITY)}`" in DOC
        assert str(MAX_SEQ) in DOC
        assert f"`{events.RESERVED_EVENT_PREFIX.title()}`" in DOC

    def test_every_checked_amount_and_blocked_id_is_listed(self) -> None:
        missing = [name for name in (*NUMERIC_PROPERTIES, *BLOCKED_IDS) if f"`{name}`" not in DOC]
        assert not missing, f"missing from docs/protocol.md: {missing}"

    @pytest.mark.parametrize("field", [
        "max_event_bytes", "max_batch_bytes", "max_events_per_batch", "max_future_skew_s", "max_event_age_s",
        "max_ingest_lag_s", "max_ack_delay_s", "dedup_window_s", "dedup_max_ids", "http_head_timeout_s",
        "http_max_head_bytes", "http_max_connections", "quarantine_max", "quarantine_retention_s",
        "stream_shards",
    ])
    def test_protocol_settings_are_documented_with_their_defaults(self, field: str) -> None:
        variable = f"ATTIMO_{field.upper()}"
        default = documented_default(Settings.model_fields[field].default)
        rows = [line for line in LINES if line.startswith(f"| `{variable}`")]
        assert rows, f"{variable} has no row in the settings table"
        assert f"| {default} |" in rows[0], f"{variable}: the code's default is {default}, the document says {rows[0]}"

    def test_every_setting_the_document_names_exists(self) -> None:
        named = set(re.findall(r"ATTIMO_([A-Z0-9_]+)", DOC))
        unknown = sorted(name for name in named if name.lower() not in Settings.model_fields)
        assert not unknown, f"docs/protocol.md names settings that do not exist: {unknown}"


class TestRoutesAndKeys:
    """Every public route and every Redis key is documented."""

    def test_every_v1_route_is_documented_with_its_methods(self) -> None:
        app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))  # the lifespan never runs: no Redis
        routes = [(path, methods) for path, methods in route_paths(app.routes) if path.startswith("/v1")]
        assert len(routes) > 20, f"found only {len(routes)} /v1 routes: the route walk is broken"
        undocumented = []
        for path, methods in routes:
            pattern = path_pattern(path)
            for method in sorted(methods - {"HEAD"}):
                if not any(pattern.search(line) and re.search(rf"\b{method}\b", line) for line in LINES):
                    undocumented.append(f"{method} {path}")
        assert not undocumented, f"routes missing from docs/protocol.md: {undocumented}"

    def test_the_stream_path_and_key_header_are_documented(self) -> None:
        assert f"GET {STREAM_PATH}?key=" in DOC
        assert f"`{WRITE_KEY_HEADER}`" in DOC

    @pytest.mark.parametrize("name", sorted(
        name for name, build in vars(keys).items()
        if inspect.isfunction(build) and build.__module__ == keys.__name__))
    def test_every_redis_key_is_documented(self, name: str) -> None:
        pattern = key_pattern(getattr(keys, name))
        assert pattern.search(DOC), f"the key built by state.keys.{name} ({pattern.pattern}) is not documented"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


ANCHORS: Final = {github_anchor(line.lstrip("#")) for line in LINES if line.startswith("#")}


class TestLinks:
    """Links into the document land on a heading; the README points at it, not outside the repository."""

    def test_every_anchor_inside_the_document_exists(self) -> None:
        broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", DOC)) - ANCHORS)
        assert not broken, f"links to missing headings in docs/protocol.md: {broken}"

    def test_readme_links_the_protocol_and_nothing_outside_the_repository(self) -> None:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        assert "](docs/protocol.md)" in readme
        assert "../shared" not in readme and "ARCHITECTURE.md" not in readme
        broken = sorted(set(re.findall(r"\]\(docs/protocol\.md#([^)]+)\)", readme)) - ANCHORS)
        assert not broken, f"README links to missing headings of docs/protocol.md: {broken}"


class TestWorkflowExample:
    """The workflow the document shows is one the admin API accepts, and its table lists every trigger."""

    def test_the_example_workflow_is_valid(self) -> None:
        section = DOC.split("## 9. Workflows", 1)[1]
        example = section.split("```json", 1)[1].split("```", 1)[0]
        body = msgspec.json.decode(example.encode(), type=WorkflowBody)
        workflow = Workflow(id="example", **{k: v for k, v in msgspec.structs.asdict(body).items() if k != "id"})
        assert validate_config_problem(workflow) is None

    def test_every_trigger_kind_is_in_the_table(self) -> None:
        kinds = [kind.__struct_config__.tag for kind in get_args(Trigger)]
        missing = [kind for kind in kinds if f"| `{kind}` |" not in DOC]
        assert not missing, f"trigger kinds missing from docs/protocol.md 9.1: {missing}"


def validate_config_problem(workflow: Workflow) -> str | None:
    """Why a configuration holding just `workflow` would be refused, or None."""
    return config_problem(ActiveConfig(version=1, workflows=[workflow]))

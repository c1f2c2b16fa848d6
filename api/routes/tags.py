"""Admin: tag contacts by hand and manage static lists.

Tags and list memberships are dataflow state (segments read them), so the
API does not write them: it appends internal track events to the ingest
stream of the contact's shard, and the dataflow applies them in order with
everything else the contact does (exactly once, replayed after a crash like
any event). The answer is 202: accepted, applied within a second.

Internal events (names reserved for Attimo; `userId` is the contact id):

* `Attimo Tag Changed`, properties `{"add": [tag, ...], "remove": [tag, ...]}`:
  add and remove these tags (a tag never appears in both).
* `Attimo List Changed`, properties `{"list": list_id, "add": true | false}`:
  make the contact a member of the list, or not.

An id is resolved to its contact (profile or alias) when known. Tagging an
unknown contact is 404; a list may name contacts not seen yet (a CRM
import), whose events then route by the id as given.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec
import redis.asyncio as aioredis
from fastapi import APIRouter, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import NotFoundError
from api.routes.admin_config import ERRORS, InvalidBodyError, Responses, decode, error_response, json_response
from state import keys
from state.config import Identifier
from state.events import LIST_CHANGED, TAG_CHANGED, Event, Track
from state.streams import append_events

router = APIRouter(prefix="/v1/admin", tags=["admin: tags and lists"])

MAX_CONTACTS_PER_REQUEST: Final = 1000

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ContactRef = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_RESPONSES: Final[Responses] = {**ERRORS, 202: {"description": "`{\"accepted\": n}` events appended."},
                                422: {"description": "Invalid body; the message names the field."}}


class TagChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tags to add to and remove from one contact."""

    add: list[Tag] = msgspec.field(default_factory=list)
    remove: list[Tag] = msgspec.field(default_factory=list)


class ListChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Contacts to add to and remove from one list."""

    add: Annotated[list[ContactRef], msgspec.Meta(max_length=MAX_CONTACTS_PER_REQUEST)] = \
        msgspec.field(default_factory=list)
    remove: Annotated[list[ContactRef], msgspec.Meta(max_length=MAX_CONTACTS_PER_REQUEST)] = \
        msgspec.field(default_factory=list)


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _check_disjoint(add: list[str], remove: list[str], what: str) -> None:
    if not add and not remove:
        raise InvalidBodyError("nothing to add or remove")
    both = sorted(set(add) & set(remove))
    if both:
        raise InvalidBodyError(f"{what} both added and removed: {', '.join(both)}")


async def resolve_contacts(client: aioredis.Redis, ids: Sequence[str]) -> list[str | None]:
    """The contact id owning each id (itself or through its alias), None when unknown."""
    async with client.pipeline(transaction=False) as pipe:
        for any_id in ids:
            pipe.exists(keys.contact_profile(any_id))
            pipe.get(keys.contact_alias(any_id))
        replies: list[Any] = await pipe.execute()
    out: list[str | None] = []
    for i, any_id in enumerate(ids):
        exists, owner = replies[2 * i], replies[2 * i + 1]
        out.append(any_id if exists else owner.decode() if owner is not None else None)
    return out


def internal_event(contact_id: str, name: str, properties: dict[str, Any], now: datetime) -> Track:
    """An internal track event about `contact_id`, routed like the contact's own events."""
    return Track(message_id=str(uuid.uuid4()), user_id=contact_id, event=name, timestamp=now,
                 received_at=now, properties=properties)


@router.post("/contacts/{contact_id}/tags", response_class=Response, status_code=202,
             responses={**_RESPONSES, 404: {"description": "No contact is known by this id."}})
async def change_tags(contact_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                      client: RedisDep) -> Response:
    """Add and remove tags: body `{"add": [...], "remove": [...]}` → 202 `{"accepted": 1}`."""
    try:
        body = decode(await request.body(), TagChange)
        add, remove = _unique(body.add), _unique(body.remove)
        _check_disjoint(add, remove, "tags")
    except InvalidBodyError as exc:
        return error_response(422, str(exc))
    (owner,) = await resolve_contacts(client, [contact_id])
    if owner is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    event = internal_event(owner, TAG_CHANGED, {"add": add, "remove": remove}, datetime.now(UTC))
    accepted = await append_events(client, [event], settings.stream_shards)
    return json_response({"accepted": accepted}, 202)


@router.post("/lists/{list_id}/members", response_class=Response, status_code=202, responses=_RESPONSES)
async def change_list(list_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                      client: RedisDep) -> Response:
    """Add and remove list members: body `{"add": [ids], "remove": [ids]}` → 202 `{"accepted": n}`."""
    try:
        list_id = msgspec.convert(list_id, Identifier)
    except msgspec.ValidationError as exc:
        return error_response(422, f"list id {list_id!r}: {exc}")
    try:
        body = decode(await request.body(), ListChange)
        add, remove = _unique(body.add), _unique(body.remove)
        _check_disjoint(add, remove, "contacts")
    except InvalidBodyError as exc:
        return error_response(422, str(exc))
    owners = await resolve_contacts(client, [*add, *remove])
    now = datetime.now(UTC)
    events: list[Event] = [
        internal_event(owner or given, LIST_CHANGED, {"list": list_id, "add": i < len(add)}, now)
        for i, (given, owner) in enumerate(zip([*add, *remove], owners, strict=True))]
    accepted = await append_events(client, events, settings.stream_shards)
    return json_response({"accepted": accepted}, 202)

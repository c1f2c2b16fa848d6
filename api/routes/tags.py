"""Admin: tag contacts by hand and manage static lists.

Tags and list memberships are dataflow state (segments read them), so the
API does not write them: it appends internal events to the ingest stream of
the contact's shard, and the dataflow applies them in order with everything
else the contact does (exactly once, replayed after a crash like any
event). The answer is 202: accepted, applied within a second.

Internal events (`state.events.TagsChanged` / `ListChanged`) are message
types of their own: the public event decoder does not know them, so a
client with a write key cannot send one.

An id is resolved to its contact (any of its ids, an e-mail in any case)
and the event is addressed the way the dataflow keys that contact: an
anonymous visitor by its anonymous id, a known contact by its user id.
Tagging an unknown contact is 404; a list may name contacts not seen yet (a
CRM import), whose events then route by the id as given.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec
import redis.asyncio as aioredis
from fastapi import APIRouter, Request, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError
from api.models import Accepted, ErrorBody
from api.openapi import Responses, request_body, response
from api.responses import ADMIN_ERRORS, convert, decode, json_response
from state.config import Identifier
from state.contacts import ContactRef, event_ids, resolve_contact
from state.events import InternalEvent, ListChanged, TagsChanged
from state.streams import append_events

router = APIRouter(prefix="/v1/admin", tags=["admin: tags and lists"])

MAX_CONTACTS_PER_REQUEST: Final = 1000

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ContactId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_RESPONSES: Final[Responses] = {202: response(Accepted, "Internal events appended."), **ADMIN_ERRORS,
                                422: response(ErrorBody, "Invalid body; the message names the field.")}


class TagChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tags to add to and remove from one contact."""

    add: list[Tag] = msgspec.field(default_factory=list)
    remove: list[Tag] = msgspec.field(default_factory=list)


class ListChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Contacts to add to and remove from one list."""

    add: Annotated[list[ContactId], msgspec.Meta(max_length=MAX_CONTACTS_PER_REQUEST)] = \
        msgspec.field(default_factory=list)
    remove: Annotated[list[ContactId], msgspec.Meta(max_length=MAX_CONTACTS_PER_REQUEST)] = \
        msgspec.field(default_factory=list)


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _check_disjoint(add: list[str], remove: list[str], what: str) -> None:
    if not add and not remove:
        raise InvalidBodyError("nothing to add or remove")
    both = sorted(set(add) & set(remove))
    if both:
        raise InvalidBodyError(f"{what} both added and removed: {', '.join(both)}")


async def resolve_all(client: aioredis.Redis, ids: Sequence[str]) -> list[ContactRef | None]:
    """The contact owning each id (any of its ids), None when unknown."""
    return list(await asyncio.gather(*(resolve_contact(client, any_id) for any_id in ids)))


def tags_changed(ref: ContactRef, add: list[str], remove: list[str], now: datetime) -> TagsChanged:
    """The internal event that changes one contact's tags."""
    anonymous_id, user_id = event_ids(ref, ref.contact_id)
    return TagsChanged(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, user_id=user_id,
                       timestamp=now, received_at=now, add=add, remove=remove)


def list_changed(ref: ContactRef | None, given: str, list_id: str, member: bool, now: datetime) -> ListChanged:
    """The internal event that puts one contact on a list, or takes it off."""
    anonymous_id, user_id = event_ids(ref, given)
    return ListChanged(message_id=str(uuid.uuid4()), anonymous_id=anonymous_id, user_id=user_id,
                       timestamp=now, received_at=now, list_id=list_id, member=member)


@router.post("/contacts/{contact_id:path}/tags", response_class=Response, status_code=202,
             openapi_extra=request_body(TagChange),
             responses={**_RESPONSES, 404: response(ErrorBody, "No contact is known by this id.")})
async def change_tags(contact_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                      client: RedisDep) -> Response:
    """Add and remove tags: body `{"add": [...], "remove": [...]}` → 202 `{"accepted": 1}`."""
    body = decode(await request.body(), TagChange)
    add, remove = _unique(body.add), _unique(body.remove)
    _check_disjoint(add, remove, "tags")
    ref = await resolve_contact(client, contact_id)
    if ref is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    event = tags_changed(ref, add, remove, datetime.now(UTC))
    accepted = await append_events(client, [event], settings.stream_shards)
    return json_response(Accepted(accepted), 202)


@router.post("/lists/{list_id}/members", response_class=Response, status_code=202,
             openapi_extra=request_body(ListChange), responses=_RESPONSES)
async def change_list(list_id: str, request: Request, _admin: AdminDep, settings: SettingsDep,
                      client: RedisDep) -> Response:
    """Add and remove list members: body `{"add": [ids], "remove": [ids]}` → 202 `{"accepted": n}`."""
    list_id = convert(list_id, Identifier, "list id")
    body = decode(await request.body(), ListChange)
    add, remove = _unique(body.add), _unique(body.remove)
    _check_disjoint(add, remove, "contacts")
    given = [*add, *remove]
    refs = await resolve_all(client, given)
    now = datetime.now(UTC)
    events: list[InternalEvent] = [
        list_changed(ref, any_id, list_id, i < len(add), now)
        for i, (any_id, ref) in enumerate(zip(given, refs, strict=True))]
    accepted = await append_events(client, events, settings.stream_shards)
    return json_response(Accepted(accepted), 202)

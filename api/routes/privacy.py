"""Admin: erase a contact (GDPR art. 17), follow the erase, lift its tombstone, export a contact (art. 15/20).

Erase goes through the dataflow (`state.erasure`): the route resolves the
contact by any of its ids, hashes every id it is known by, sets the
tombstones and appends one erase control to an ingest stream, then answers
202 with the erase's id. `GET /v1/admin/erasures/{id}` tells how far it got
(`pending` → `erased` → `scrubbed`, the last once the recovery store was
vacuumed). An id nobody knows is still tombstoned: a request to be
forgotten may come before the person's first event.

Re-consent: `POST /v1/admin/contacts/{id}/consent` lifts the tombstones of
the erase that covered `id` (all of that erase's ids, e-mail included), so
the site's later events of that person are taken again, as a new contact.

Every route needs an admin token with the `contacts:erase` scope (the
export too: it hands out everything held about a person).

Export reads what Attimo still holds: the profile, the events still in the
ingest streams, current segment memberships with their entry times and the
segment change log, and the messages (the profile's action log, actions
waiting in the outbox, dead letters).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

import msgspec
from fastapi import APIRouter, Response

from api.deps import EraseDep, RedisDep, SettingsDep
from api.errors import NotFoundError
from api.models import ErrorBody
from api.openapi import response
from api.responses import ADMIN_ERRORS, json_response
from state import keys
from state.actions import OUTBOX_FIELD, decode_action
from state.config_store import current_config
from state.contacts import resolve_contact
from state.erasure import EraseControl, EraseStatus, hashes_of, id_hash, read_status, send_erase
from state.events import Alias, Identify
from state.profile import Profile
from state.segment_changes import decode_change
from state.shards import shard_of
from state.streams import ENTRY_FIELD, decode_entry_salvaging

router = APIRouter(prefix="/v1/admin", tags=["admin: privacy"])

_PAGE = 1000


class EraseAccepted(msgspec.Struct, frozen=True):
    """The erase was recorded and sent to the dataflow; follow it at `status`."""

    erase_id: str
    status: str
    ids_hashed: int


class ConsentAccepted(msgspec.Struct, frozen=True):
    """The tombstones of erase `erase_id` are lifted (the dataflow takes them off in stream order)."""

    erase_id: str
    ids_hashed: int


class ContactExport(msgspec.Struct, frozen=True):
    """Everything Attimo still holds about one contact (GDPR access / portability)."""

    contact_id: str
    exported_at: float
    profile: dict[str, Any]
    events: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    segment_changes: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]


def profile_ids(profile: Profile | None, given: str) -> list[str]:
    """Every id the contact is known by (and the one given)."""
    ids = [given]
    if profile is not None:
        ids += [profile.contact_id, *profile.anonymous_ids]
        ids += [i for i in (profile.user_id, profile.email) if i]
    return list(dict.fromkeys(ids))


@router.post("/contacts/{contact_id:path}/erase", response_class=Response, status_code=202,
             responses={202: response(EraseAccepted, "Erase recorded; the dataflow applies it within seconds."),
                        **ADMIN_ERRORS})
async def erase_contact(contact_id: str, _admin: EraseDep, settings: SettingsDep, client: RedisDep) -> Response:
    """Erase the contact known by `contact_id` (anonymous id, user id or e-mail) → 202 `{"erase_id", "status"}`."""
    ref = await resolve_contact(client, contact_id)
    profile = ref.profile if ref is not None else None
    hashes = hashes_of(profile_ids(profile, contact_id))
    erase_id = uuid.uuid4().hex
    owner = profile.contact_id if profile is not None else contact_id
    await send_erase(client, EraseControl(erase_id, hashes, time.time()), shard_of(owner, settings.stream_shards))
    return json_response(EraseAccepted(erase_id, f"/v1/admin/erasures/{erase_id}", len(hashes)), 202)


@router.get("/erasures/{erase_id}", response_class=Response,
            responses={200: response(EraseStatus, "How far the erase got."), **ADMIN_ERRORS,
                       404: response(ErrorBody, "No erase has this id.")})
async def erase_status(erase_id: str, _admin: EraseDep, settings: SettingsDep, client: RedisDep) -> Response:
    """An erase's progress: `pending`, `erased` (every contact shard applied it), `scrubbed` (recovery store too)."""
    status = await read_status(client, erase_id, settings.contact_shards, settings.recovery)
    if status is None:
        raise NotFoundError(f"no erase has id {erase_id!r}")
    return json_response(status)


@router.post("/contacts/{contact_id:path}/consent", response_class=Response, status_code=202,
             responses={202: response(ConsentAccepted, "Tombstones lifted."), **ADMIN_ERRORS,
                        404: response(ErrorBody, "The id is not erased.")})
async def lift_tombstone(contact_id: str, _admin: EraseDep, settings: SettingsDep, client: RedisDep) -> Response:
    """The person re-consented: lift the tombstones of the erase that covered `contact_id` (all its ids)."""
    owner = cast("bytes | None", await client.get(keys.tombstone(id_hash(contact_id))))
    if owner is None:
        raise NotFoundError(f"{contact_id!r} is not erased")
    erase_id = owner.decode()
    stored = cast("bytes | None", await client.hget(keys.erasure(erase_id), "hashes"))
    hashes = json.loads(stored) if stored else [id_hash(contact_id)]
    control = EraseControl(uuid.uuid4().hex, hashes, time.time(), lift=True)
    await send_erase(client, control, shard_of(contact_id, settings.stream_shards))
    return json_response(ConsentAccepted(erase_id, len(hashes)), 202)


def _named(event: Any, ids: set[str]) -> bool:
    named = {event.anonymous_id, event.user_id}
    if isinstance(event, Alias):
        named.add(event.previous_id)
    elif isinstance(event, Identify) and isinstance(event.traits.get("email"), str):
        named.add(event.traits["email"].lower())
    return bool(ids & named)


async def _entries(client: Any, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    found: list[tuple[bytes, dict[bytes, bytes]]] = []
    start = "-"
    while True:
        page = cast("list[tuple[bytes, dict[bytes, bytes]]]",
                    await client.xrange(stream, start, "+", count=_PAGE))
        found += page
        if len(page) < _PAGE:
            return found
        start = "(" + page[-1][0].decode()


@router.get("/contacts/{contact_id:path}/export", response_class=Response,
            responses={200: response(ContactExport, "The contact's data as JSON."), **ADMIN_ERRORS,
                       404: response(ErrorBody, "No contact is known by this id.")})
async def export_contact(contact_id: str, _admin: EraseDep, settings: SettingsDep, client: RedisDep) -> Response:
    """Everything held about the contact: profile, retained events, segments (and their history), messages.

    Events are those still in the ingest streams (see `ATTIMO_EVENT_RETENTION_S`);
    a segment's entry time comes from its member set; the change log holds
    the most recent changes only (a capped stream).
    """
    ref = await resolve_contact(client, contact_id)
    if ref is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    profile = ref.profile
    ids = set(profile_ids(profile, contact_id))
    events: list[dict[str, Any]] = []
    for shard in range(settings.stream_shards):
        for entry_id, fields in await _entries(client, keys.event_stream(shard)):
            payload = fields.get(ENTRY_FIELD)
            if payload is None or not any(i.encode() in payload for i in ids):
                continue
            decoded, _ = decode_entry_salvaging(payload)
            events += [{"stream_entry": entry_id.decode(), "event": msgspec.to_builtins(e)}
                       for e in decoded if _named(e, ids)]
    config = await current_config(client)
    segments: list[dict[str, Any]] = []
    for segment in config.segments:
        entered = await client.zscore(keys.segment_members(segment.id), profile.contact_id)
        if entered is not None:
            segments.append({"segment": segment.id, "entered_at": float(entered)})
    changes = [msgspec.to_builtins(change) for _, fields in await _entries(client, keys.segment_changes())
               if (change := decode_change(fields)).contact_id in ids]
    outbox = []
    for shard in range(settings.outbox_shards):
        for _, fields in await _entries(client, keys.outbox(shard)):
            try:
                action = decode_action(fields.get(OUTBOX_FIELD, b""))
            except msgspec.DecodeError:
                continue
            if action.contact.contact_id in ids:
                outbox.append(msgspec.to_builtins(action))
    letters = []
    for letter_id in cast("list[bytes]", await client.zrange(keys.dead_letters(), 0, -1)):
        raw = cast("bytes | None", await client.get(keys.dead_letter(letter_id.decode())))
        if raw is not None and any(i.encode() in raw for i in ids):
            letters.append(json.loads(raw))
    return json_response(ContactExport(
        contact_id=profile.contact_id, exported_at=time.time(), profile=msgspec.to_builtins(profile),
        events=events, segments=segments, segment_changes=changes,
        messages=[msgspec.to_builtins(a) for a in profile.actions], outbox=outbox, dead_letters=letters))

"""Admin: who is in a segment, which segments a contact is in, and backfill progress.

Memberships are written by the dataflow: the sorted set
`keys.segment_members(id)` holds each member scored by the moment it
entered (epoch seconds), and the profile lists the contact's segments.

Member pages are ordered oldest entry first and use a keyset cursor
(the last entry's score and id), so members entering or leaving while an
operator pages neither repeat nor skip the others.

Backfill: after a configuration version is published, the dataflow
re-evaluates every contact under it, one contact shard at a time, and when a
shard is finished sets field `<stage>:<shard>` (`visitors:7`, `contacts:7`) of
`keys.backfill_progress(version)` to the number of contacts it re-evaluated.
A field's presence means "this shard of this stage is done".
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from typing import Annotated, Final, cast

import msgspec
import redis.asyncio as aioredis
from fastapi import APIRouter, Query, Response

from api.deps import AdminDep, RedisDep, SettingsDep
from api.errors import InvalidBodyError, NotFoundError
from api.models import BackfillStatus, ContactSegments, ErrorBody, Member, MembersPage
from api.openapi import Responses, response
from api.responses import ADMIN_ERRORS, json_response
from state import keys
from state.config_store import current_config
from state.contacts import load_profile

router = APIRouter(prefix="/v1/admin", tags=["admin: segments"])

MAX_PAGE: Final = 1000
_NOT_FOUND: Final[Responses] = {404: response(ErrorBody, "No such segment or contact.")}


def encode_cursor(score: float, member: bytes) -> str:
    """An opaque cursor naming one entry: its score and member id."""
    return base64.urlsafe_b64encode(msgspec.json.encode([score, member.decode()])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, bytes]:
    """The entry a cursor names; InvalidBodyError (→ 422) when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, member = msgspec.json.decode(raw, type=tuple[float, str])
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidBodyError("invalid cursor") from exc
    return score, member.encode()


async def _start_after(client: aioredis.Redis, key: str, score: float, member: bytes) -> int:
    """Index of the first entry ordered after (score, member) in the sorted set."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrank(key, member)
        pipe.zscore(key, member)
        rank, current = await pipe.execute()
    if rank is not None and current == score:
        return int(rank) + 1
    # The entry left (or re-entered later): count what sorts before it.
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcount(key, "-inf", f"({score!r}")
        pipe.zrangebyscore(key, score, score)
        before, ties = await pipe.execute()
    return int(before) + bisect_right(ties, member)  # equal scores sort by member bytes


async def _require_segment(client: aioredis.Redis, segment_id: str) -> int:
    config = await current_config(client)
    if all(s.id != segment_id for s in config.segments):
        raise NotFoundError(f"no segment {segment_id!r}")
    return config.version


@router.get("/segments/{segment_id}/members", response_class=Response,
            responses={200: response(MembersPage, "A page of members."), **ADMIN_ERRORS, **_NOT_FOUND,
                       422: response(ErrorBody, "Bad cursor or limit.")})
async def segment_members(
    segment_id: str, _admin: AdminDep, client: RedisDep,
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    """A page of members, oldest entry first.

    `{"data": [{"contact_id", "entered_at"}], "count": total, "next_cursor": str | null}`;
    pass `next_cursor` back as `cursor` for the next page.
    """
    await _require_segment(client, segment_id)
    key = keys.segment_members(segment_id)
    start = 0
    if cursor:
        score, member = decode_cursor(cursor)
        start = await _start_after(client, key, score, member)
    async with client.pipeline(transaction=False) as pipe:
        pipe.zcard(key)
        pipe.zrange(key, start, start + limit, withscores=True)  # one extra: is there a next page?
        total, rows = await pipe.execute()
    page: list[tuple[bytes, float]] = rows[:limit]
    next_cursor = encode_cursor(page[-1][1], page[-1][0]) if len(rows) > limit else None
    data = [Member(member.decode(), score) for member, score in page]
    return json_response(MembersPage(data, int(total), next_cursor))


@router.get("/contacts/{contact_id:path}/segments", response_class=Response,
            responses={200: response(ContactSegments, "The contact's segments."), **ADMIN_ERRORS, **_NOT_FOUND})
async def contact_segments(contact_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """The segments of the contact known by `contact_id` (any of its ids): `{"data", "count"}`."""
    profile = await load_profile(client, contact_id)
    if profile is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    segments = sorted(profile.segments)
    return json_response(ContactSegments(profile.contact_id, segments, len(segments)))


@router.get("/segments/{segment_id}/backfill", response_class=Response,
            responses={200: response(BackfillStatus, "Backfill progress."), **ADMIN_ERRORS, **_NOT_FOUND})
async def segment_backfill(
    segment_id: str, _admin: AdminDep, settings: SettingsDep, client: RedisDep,
    version: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """How far re-evaluating every contact under a configuration version has got.

    `{"version", "shards_done", "shards_total", "contacts", "done"}` for the
    current version unless `version` is given; version 0 (nothing ever
    published) has nothing to re-evaluate and is done.
    """
    current = await _require_segment(client, segment_id)
    wanted = current if version is None else version
    # Every contact shard exists in both dataflow stages (visitors, contacts); each reports.
    total = 2 * settings.contact_shards
    if wanted == 0:
        return json_response(BackfillStatus(0, total, total, 0, True))
    progress = cast("dict[bytes, bytes]", await client.hgetall(keys.backfill_progress(wanted)))
    contacts = sum(int(v) for v in progress.values() if v.isdigit())
    done = min(len(progress), total)
    return json_response(BackfillStatus(wanted, done, total, contacts, done >= total))

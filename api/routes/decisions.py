"""Public: what on-site widgets should show a visitor right now.

This is the hottest read path (every page view of every visitor), so it stays
lean: the write key comes from a short cache, the profile is one Redis GET,
and the answer is encoded by msgspec without pydantic.
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Response

from api.deps import RedisDep, WriteKeyDep
from api.models import ErrorBody
from api.openapi import response
from state.contacts import load_profile
from state.profile import Decisions, decisions_for

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])

_ENCODER = msgspec.json.Encoder()


@router.get("/{visitor_id:path}", response_class=Response,
            responses={200: response(Decisions, "Popups, recommendations, segments and temperature; "
                                                "empty for a visitor with no state yet."),
                       401: response(ErrorBody, "Write key missing or unknown (`?key=` or `X-Attimo-Key`)."),
                       403: response(ErrorBody, "Origin not allowed for this write key.")})
async def get_decisions(visitor_id: str, _key: WriteKeyDep, client: RedisDep) -> Response:
    """Decisions for a visitor by anonymousId or userId."""
    profile = await load_profile(client, visitor_id)
    return Response(_ENCODER.encode(decisions_for(profile)), media_type="application/json",
                    headers={"Cache-Control": "no-store"})

"""Public: what on-site widgets should show a visitor right now.

This is the hottest read path (every page view of every visitor); in
production it is answered by `api.decisions_fast` in front of the app, and
this route, with the same behaviour, documents it in OpenAPI. Both read the
contact's `DecisionDoc` and the products' lists in one Redis round trip and
answer `PublicDecisions` (`api.decisions.answer`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from api.decisions.answer import DecisionService
from api.decisions_fast import MAX_PRODUCT_ID
from api.deps import WriteKeyDep
from api.models import ErrorBody
from api.openapi import response
from state.decisions import PublicDecisions

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])


@router.get("/{visitor_id:path}", response_class=Response,
            responses={200: response(PublicDecisions, "Popups to show, recommendation strips and the fields "
                                                      "a campaign made public; a visitor with no state yet "
                                                      "gets no popups and the trending strip."),
                       401: response(ErrorBody, "Write key missing or unknown (`?key=` or `X-Attimo-Key`), or "
                                                "the contact is a signed-in user and `sig` is missing."),
                       403: response(ErrorBody, "Origin not allowed for this write key, or `sig` is not the "
                                                "user id's signature.")})
async def get_decisions(
    visitor_id: str, request: Request, key: WriteKeyDep,
    product: Annotated[str | None, Query(description="The product on screen (cross-sell and up-sell for it).",
                                         max_length=MAX_PRODUCT_ID)] = None,
    sig: Annotated[str | None, Query(description="For a signed-in user: hex HMAC-SHA256 of the user id "
                                                 "with an identity secret.")] = None,
    x_attimo_signature: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Decisions for a visitor by anonymousId or userId (a user's need `sig`)."""
    service: DecisionService = request.app.state.decisions
    body = await service.answer(visitor_id, product or None, sig or x_attimo_signature, key.identity_secrets)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

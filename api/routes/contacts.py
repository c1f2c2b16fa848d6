"""Admin: read a contact's profile, and the decisions widgets get for it, by any of its ids."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.decisions.answer import DecisionService, public_decisions
from api.deps import AdminDep, RedisDep
from api.errors import NotFoundError
from api.models import ErrorBody
from api.openapi import response
from api.responses import ADMIN_ERRORS
from state.contacts import load_profile
from state.decisions import PublicDecisions
from state.profile import Profile, encode_profile

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])


# Declared before the profile's route, whose `{contact_id:path}` would otherwise take `…/decisions` as an id.
@router.get("/{contact_id:path}/decisions", response_class=Response,
            responses={200: response(PublicDecisions, "What `GET /v1/decisions/{id}` answers for this contact: "
                                                      "popups offered, recommendation strips, public fields."),
                       **ADMIN_ERRORS})
async def get_contact_decisions(contact_id: str, request: Request, _admin: AdminDep) -> Response:
    """The contact's decisions as its widgets get them, for operators (the contact explorer).

    The same read and answer as the public route, without its checks that
    guard a visitor's page (write key, origin, a signed-in user's signature):
    the admin token or session stands for them. A contact with no state gets
    what a new visitor gets.
    """
    service: DecisionService = request.app.state.decisions
    body = public_decisions(await service.read(contact_id))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/{contact_id:path}", response_class=Response,
            responses={200: response(Profile, "The contact's profile."), **ADMIN_ERRORS,
                       404: response(ErrorBody, "No contact is known by this id.")})
async def get_contact(contact_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """The profile of the contact known by `contact_id` (anonymous id, user id or e-mail)."""
    profile = await load_profile(client, contact_id)
    if profile is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    return Response(encode_profile(profile), media_type="application/json")

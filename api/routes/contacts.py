"""Admin: read a contact's profile by any of its ids."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import AdminDep, RedisDep
from api.errors import NotFoundError
from api.models import ErrorBody
from api.openapi import response
from api.responses import ADMIN_ERRORS
from state.contacts import load_profile
from state.profile import Profile, encode_profile

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])


@router.get("/{contact_id:path}", response_class=Response,
            responses={200: response(Profile, "The contact's profile."), **ADMIN_ERRORS,
                       404: response(ErrorBody, "No contact is known by this id.")})
async def get_contact(contact_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """The profile of the contact known by `contact_id` (anonymous id, user id or e-mail)."""
    profile = await load_profile(client, contact_id)
    if profile is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    return Response(encode_profile(profile), media_type="application/json")

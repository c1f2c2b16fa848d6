"""Admin: read a contact's profile by any of its ids."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import AdminDep, RedisDep
from api.errors import NotFoundError
from state.contacts import load_profile
from state.profile import encode_profile

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])


@router.get("/{contact_id:path}", response_class=Response,
            responses={200: {"description": "The contact's profile (see `state.profile.Profile`)."},
                       401: {"description": "Admin token missing or wrong."},
                       404: {"description": "No contact is known by this id."}})
async def get_contact(contact_id: str, _admin: AdminDep, client: RedisDep) -> Response:
    """The profile of the contact known by `contact_id` (anonymous id, user id or e-mail)."""
    profile = await load_profile(client, contact_id)
    if profile is None:
        raise NotFoundError(f"no contact is known by {contact_id!r}")
    return Response(encode_profile(profile), media_type="application/json")

"""HTTP routes, one `APIRouter` per resource."""

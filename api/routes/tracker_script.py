"""`GET /tracker.js`: serves the built browser tracker to shops' pages.

The file is read on each request (it is ~5 KB) so that rebuilding the tracker
takes effect without restarting the API. The short max-age lets browsers
and CDNs cache it while a fix still reaches every visitor within minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

DIST: Final = Path(__file__).resolve().parents[2] / "tracker_js" / "dist" / "attimo.js"
CACHE_CONTROL: Final = "public, max-age=300"

router = APIRouter(tags=["tracker"])


@router.get("/tracker.js", response_class=Response)
def tracker_script() -> Response:
    """The minified tracker, or 503 if `tracker_js/build.sh` has not been run."""
    try:
        body = DIST.read_bytes()
    except FileNotFoundError:
        return PlainTextResponse(
            "// attimo tracker is not built: run tracker_js/build.sh\n",
            status_code=503,
            media_type="application/javascript",
            headers={"Cache-Control": "no-store"},
        )
    return Response(body, media_type="application/javascript", headers={"Cache-Control": CACHE_CONTROL})

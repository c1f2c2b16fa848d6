"""The demo shop's segments, put through the segments admin API of a running Attimo.

A few live segments of the kinds a shop defines first, so that the
dashboard's segment chart and the contact explorer have something to show
while the demo shoppers browse: coffee lovers (a window count), shoppers with
a cart (cart state), warm-or-hot leads (temperature), returning visitors.
`install` is idempotent (PUT by id).

    python -m api.demo.segments      # against the running `attimo run`
"""

from __future__ import annotations

import logging
from typing import Any, Final

from api.demo.admin_client import API_WAIT_S, admin_request, run_by_hand, run_or_warn

log = logging.getLogger("attimo.demo")

DEMO_SEGMENTS: Final[dict[str, dict[str, Any]]] = {
    "demo-coffee-lovers": {
        "name": "Coffee lovers (2+ coffee views in 30 min)",
        "when": {"kind": "count", "dimension": "category", "value": "coffee", "event": "Product Viewed",
                 "window_s": 1800, "op": "gte", "n": 2}},
    "demo-with-cart": {"name": "Has a cart", "when": {"kind": "cart"}},
    "demo-warm-leads": {"name": "Warm or hot leads", "when": {"kind": "temperature", "values": ["warm", "hot"]}},
    "demo-returning": {"name": "Returning visitors", "when": {"kind": "returning", "value": True}},
}


def install(api_url: str, admin_token: str) -> list[str]:
    """PUT every demo segment into the Attimo at `api_url`; returns the ids it took.

    Raises `OSError` (`urllib.error.URLError` / `HTTPError`) when the API
    cannot be reached or refuses one.
    """
    base = api_url.rstrip("/")
    for segment_id, body in DEMO_SEGMENTS.items():
        admin_request(base, admin_token, "PUT", f"/v1/admin/segments/{segment_id}", body)
    log.info("demo segments installed", extra={"segments": list(DEMO_SEGMENTS), "api": base})
    return list(DEMO_SEGMENTS)


def install_or_warn(api_url: str, admin_token: str, wait_s: float = API_WAIT_S) -> bool:
    """`install`, logging a warning instead of raising (the demo runs without them too)."""
    return run_or_warn(install, api_url, admin_token, what="segments", wait_s=wait_s, absent_ok=True,
                       hint="the dashboard's segment chart needs them (python -m api.demo.segments)")


def main() -> None:
    """Install the demo segments into the `attimo run` whose settings this process finds."""
    run_by_hand(install, "segments")


if __name__ == "__main__":
    main()

"""What the demo's set-up steps share: one admin API request, waiting for the API, running by hand.

`attimo demo` puts its campaigns and its catalog into a running Attimo
through the admin API, as a shop's back end would. Each step is one function
`(api_url, admin_token) -> result`; this module sends their requests, waits
for an API that is still starting, and turns their failures into a log line
(for `attimo demo`, which runs without them too) or an exit message (run by
hand).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger("attimo.demo")

HTTP_TIMEOUT_S: Final = 5.0
API_WAIT_S: Final = 15.0

Step = Callable[[str, str], object]
"""A set-up step: given the API's URL and the admin token, it calls the admin API (raising `OSError`)."""


def admin_request(api_url: str, admin_token: str, method: str, path: str, body: Any) -> Any:
    """Send `body` as JSON to the admin route `path`; the decoded answer (None when it has no body).

    Raises `OSError` (`urllib.error.URLError` / `HTTPError`) when the API cannot be reached or refuses.
    """
    request = urllib.request.Request(f"{api_url.rstrip('/')}{path}", method=method, data=json.dumps(body).encode())
    request.add_header("Authorization", f"Bearer {admin_token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def run_or_warn(step: Step, api_url: str, admin_token: str, *, what: str, hint: str,
                wait_s: float = API_WAIT_S, absent_ok: bool = False) -> bool:
    """Run `step`, logging a warning instead of raising; whether it ran.

    An API that does not answer yet (`attimo run --demo-shoppers` starts the
    demo beside it) is waited for up to `wait_s`; a refusal is not retried.
    With `absent_ok`, a 404 (an Attimo without that admin route) is only noted.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            step(api_url, admin_token)
            return True
        except urllib.error.HTTPError as exc:
            if absent_ok and exc.code == 404:
                log.info(f"no admin route for the {what}; not installed", extra={"api": api_url})
                return False
            error = f"HTTP {exc.code}"
        except OSError as exc:  # not answering (yet)
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            error = str(exc)
        log.warning(f"demo {what} not installed; {hint}", extra={"error": error, "api": api_url})
        return False


def run_by_hand(step: Step, what: str) -> None:
    """Run `step` against the `attimo run` whose settings this process finds; exit with a message if it fails."""
    from api.cli import use_dev_credentials
    from state.logs import configure_logging
    from state.settings import Settings

    configure_logging("demo")
    use_dev_credentials(create=False)
    settings = Settings()
    try:
        step(settings.api_url, settings.admin_token)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"the admin API refused the demo {what}: HTTP {exc.code} {exc.read()!r}") from None
    except OSError as exc:
        raise SystemExit(f"cannot reach Attimo at {settings.api_url}: {exc}") from None

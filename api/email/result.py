"""What became of one attempt to send an e-mail, in the terms the dispatcher retries by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["delivered", "retry", "permanent"]


@dataclass(frozen=True, slots=True)
class EmailResult:
    """The outcome of one SMTP attempt and why.

    `delivered`: the server accepted the message (it is now the server's to
    deliver). `retry`: a temporary failure — no connection, a timeout, a 4xx
    reply — worth trying again later. `permanent`: trying again cannot help
    — a 5xx reply, no recipient, no SMTP set-up — so the action belongs in
    the dead-letter list. `smtp_code` is the server's reply code when there
    was one.
    """

    outcome: Outcome
    reason: str
    smtp_code: int | None = None

    @property
    def delivered(self) -> bool:
        """The server took the message."""
        return self.outcome == "delivered"

    @property
    def retry(self) -> bool:
        """Try again later."""
        return self.outcome == "retry"

    @property
    def permanent(self) -> bool:
        """Give up: the dead-letter list."""
        return self.outcome == "permanent"

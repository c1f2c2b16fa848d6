"""E-mail without an e-mail provider: SMTP sending, signed tracking and unsubscribe links, their events.

`send_email(action, settings)` is what the dispatcher calls for an action of
kind `email`; `api.routes.email` serves the links the messages carry.
"""

from api.email.result import EmailResult
from api.email.sender import send_email

__all__ = ["EmailResult", "send_email"]

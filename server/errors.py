"""How the APIs answer a failure: an HTTP status and a one-line message for every exception.

Both transports use this one mapping, so a bad request reads the same over REST and Gradio's API:
a ValueError is the caller's mistake (400, its own message), a full model queue asks them to come back
(429), cancelled work says so (499, as nginx names a request the client closed), and anything else is
logged with its traceback and answered with one line naming the exception type.
"""

from __future__ import annotations

import logging

from service.public import Cancelled, LaneFull

log = logging.getLogger(__name__)

MESSAGE_CHARS = 300  # longer messages are cut: an API answer is one readable line
BAD_REQUEST, CLIENT_CLOSED, TOO_MANY, INTERNAL = 400, 499, 429, 500


def one_line(text: str) -> str:
    """The text on one line (whitespace runs collapsed), cut to `MESSAGE_CHARS`."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MESSAGE_CHARS else flat[: MESSAGE_CHARS - 1] + "…"


def describe(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, one-line message) for an exception raised while serving a request."""
    if isinstance(exc, ValueError):
        return BAD_REQUEST, one_line(exc)
    if isinstance(exc, LaneFull):
        return TOO_MANY, one_line(exc)
    if isinstance(exc, Cancelled):
        return CLIENT_CLOSED, one_line(exc)
    log.error("unexpected error while serving a request", exc_info=exc)
    return INTERNAL, one_line(f"internal error ({type(exc).__name__}): {exc}")

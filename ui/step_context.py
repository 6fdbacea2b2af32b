"""What each page shows: the session and controls its latest explorer event left, by Gradio session.

Step's quick path (`quickstep`) is a server function, outside Gradio's event queue: it receives no state. It
reads here the session and controls the page's last event answered with, and steps from them only when their
request is the one the page's bars carry (so a page whose state moved on some other way gets no quick answer).
"""

from __future__ import annotations

from dataclasses import dataclass

from service import public

from .controls import Controls
from .state import Session

KEEP = 1024  # pages remembered (one entry each, replaced by every event of that page)
TTL_S = 3600.0  # a page idle for an hour steps through Gradio's queue alone at its next click


@dataclass(frozen=True)
class Context:
    session: Session
    controls: Controls


CONTEXTS: public.BoundedCache[str, Context] = public.BoundedCache(max_entries=KEEP, ttl_s=TTL_S)


def remember(page: str | None, session: Session, controls: Controls) -> None:
    """Record what the page `page` (its Gradio session hash) shows after an event."""
    if page:
        CONTEXTS.put(page, Context(session, controls))


def recall(page: str | None) -> Context | None:
    return CONTEXTS.get(page) if page else None

"""Shared helpers of the UI tests: controls for a short prompt, and a session stepped n times."""

from __future__ import annotations

from dataclasses import replace

from ui import actions
from ui.controls import Controls
from ui.state import Session

CONTROLS = replace(Controls(), prompt="The capital of France is", seed="7", top_k=5, temperature=0.7, top_p=0.9)


def stepped(n: int, controls: Controls = CONTROLS, session: Session | None = None) -> Session:
    session = session or Session()
    for _ in range(n):
        session = actions.step(session, controls).session
    return session

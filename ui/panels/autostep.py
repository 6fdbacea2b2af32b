"""Auto-step: ▶ Play steps on a timer until a finish reason, the max-steps guard or ⏸ Pause.

The playing flag lives in its own state, written only by Play/Pause (immediately, outside the model
queue) and by a tick that stops by itself, so a step in flight can never switch auto-step back on.
A tick runs only after the previous one finished (trigger_mode "once") and first checks the flag,
so Pause stops before the next step. The status line shows the rate achieved beside the one asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import gradio as gr

from .. import actions
from ..controls import Controls
from ..events import QUICK_EVENT, Explorer, Outcome
from ..state import Session
from ..wording import on_screen
from .explorer import PLAY

PAUSE = "⏸ Pause"
D = Controls()


@dataclass(frozen=True)
class Playing:
    """Whether auto-step runs, and since when (the run's identity)."""

    on: bool = False
    started: float = 0.0


def create_autostep() -> dict:
    c = {"autoplay": gr.State(Playing()), "timer": gr.Timer(1.0, active=False)}
    with gr.Accordion("Auto-step", open=False, elem_id="auto-panel") as c["auto_panel"], gr.Row():
        c["speed"] = gr.Slider(0.2, 10, D.speed, step=0.2, label="Auto-step speed (steps per second)")
        c["max_steps"] = gr.Slider(1, 500, D.max_steps, step=1, label="Stop auto-step after (steps)")
    return c


def toggle(playing: Playing, speed: float) -> tuple:
    """Play or pause: the timer, the button's label and the flag."""
    now = Playing(not playing.on, time.monotonic())
    timer = gr.Timer(value=1.0 / max(float(speed), 0.1), active=now.on)
    return timer, gr.Button(PAUSE if now.on else PLAY), now


def tick(session: Session, controls: Controls, playing: Playing) -> Outcome | dict | None:
    """One step while playing; stops at a finish reason, an error or after `max_steps` steps."""
    if not playing.on:
        return None
    started, done = session.auto_run
    done = done + 1 if started == playing.started else 1
    try:
        outcome = actions.step(session, controls)
    except ValueError as exc:
        gr.Warning(f"Auto-step stopped: {on_screen(str(exc))}")
        return _stopped()
    rate = done / max(time.monotonic() - playing.started, 1e-6)
    notice = f"auto-step: {done} steps at {rate:.1f} per second (asked {controls.speed:g})"
    if rate < 0.8 * controls.speed:
        notice += ": each step takes longer than the interval here"
    session = replace(outcome.session, auto_run=(playing.started, done))
    also = _stopped() if outcome.result["finished"] or done >= controls.max_steps else {}
    return replace(outcome, session=session, notice=notice, also=also)


def _stopped() -> dict:
    return {"timer": gr.Timer(active=False), "play": gr.Button(PLAY), "autoplay": Playing()}


def wire_autostep(ex: Explorer) -> None:
    c = ex.c
    c["play"].click(toggle, [c["autoplay"], c["speed"]], [c["timer"], c["play"], c["autoplay"]], queue=False,
                    **QUICK_EVENT)  # fmt: skip
    c["speed"].change(lambda s: gr.Timer(value=1.0 / max(float(s), 0.1)), c["speed"], c["timer"], **QUICK_EVENT)
    ex.on(c["timer"].tick, tick, extra=("autoplay",), also=("timer", "play", "autoplay"), trigger_mode="once")

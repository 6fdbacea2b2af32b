"""The composed app: every control is a component by name, and the events read them by name."""

from __future__ import annotations

import gradio as gr

import app
from ui.controls import FIELDS
from ui.events import PANELS, Explorer


def test_the_app_builds_with_a_component_for_every_control_and_panel(monkeypatch):
    built = {}
    real_init = Explorer.__init__

    def keep(self, components):
        built.update(components)
        real_init(self, components)

    monkeypatch.setattr(Explorer, "__init__", keep)
    demo = app.build()
    assert isinstance(demo, gr.Blocks)
    assert set(FIELDS) <= set(built) and set(PANELS) <= set(built)
    assert all(isinstance(built[name], gr.components.Component) for name in FIELDS)
    names = {fn.api_name for fn in demo.fns.values() if fn.api_name}
    assert {"model_status", "load_model", "preview", "step", "attribution"} <= names


def test_a_refused_action_changes_no_output_and_says_why(monkeypatch):
    from ui.events import refuse

    said = []
    monkeypatch.setattr(gr, "Warning", lambda message, **kw: said.append(message))
    refuse(ValueError("the completion is empty"))
    assert said == ["the completion is empty"]
    unchanged = Explorer({"session": "the session state"}).unchanged()
    assert list(unchanged) == ["the session state"]  # one named output, skipped: Gradio reads {} as one value
    assert unchanged["the session state"] == gr.skip()


def test_events_that_write_the_session_run_one_at_a_time_in_order():
    demo = app.build()
    session = next(block for block in demo.blocks.values() if isinstance(block, gr.State) and block.value is not None
                   and type(block.value).__name__ == "Session")  # fmt: skip
    writers = [fn for fn in demo.fns.values() if any(out._id == session._id for out in fn.outputs)]
    assert writers and all(fn.concurrency_id == "session" and fn.concurrency_limit == 1 for fn in writers)

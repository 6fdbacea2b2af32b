"""The panels' own actions: presets and knobs, constraints, auto-step, branches, lens, attribution, chat, files."""

from __future__ import annotations

import json
from dataclasses import replace

import gradio as gr
import pytest

from backends.model import STORE
from decoding.constraints import EXAMPLES
from tests.ui.helpers import CONTROLS, stepped
from ui import settings
from ui.panels import attribution_panel, autostep, branches, chat_tab, lens, session_file, sidebar
from ui.state import MAIN, Prefs, Session


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def test_a_preset_sets_the_sliders_and_a_moved_knob_finds_its_preset():
    outcome = sidebar.apply_preset(Session(), replace(CONTROLS, preset="greedy"))
    assert outcome.also["temperature"] == 0.0 and outcome.controls.temperature == 0.0
    moved = sidebar.knob_moved(Session(), replace(CONTROLS, preset="greedy", temperature=0.9))
    assert moved.also == {"preset": "custom"} and moved.controls.preset == "custom"


def test_a_constraint_type_brings_back_its_own_text():
    prefs = Prefs().with_text("regex", "[a-z]+")
    assert sidebar.constraint_type_changed("regex", prefs)[0] == "[a-z]+"
    assert sidebar.constraint_type_changed("cfg", prefs)[0] == EXAMPLES["cfg"]
    kind, schema, _, remembered = sidebar.constraint_preset_chosen("email", prefs)
    assert remembered.constraint_texts[kind] == schema


def test_a_failed_model_load_keeps_the_loaded_model_in_the_box(monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda message, **kw: warnings.append(message))
    markdown, box = sidebar.load_model("no/such-model-here")
    assert warnings and box.value == STORE.get().model_id and "tiny-random-llama" in markdown


def test_auto_step_steps_while_playing_and_stops_at_the_guard():
    _, button, playing = autostep.toggle(autostep.Playing(), 4)
    assert playing.on and button.value == autostep.PAUSE
    controls = replace(CONTROLS, max_steps=2)
    first = autostep.tick(Session(), controls, playing)
    assert len(first.session.branch.ids) == 1 and "per second" in first.notice and not first.also
    second = autostep.tick(first.session, controls, playing)
    assert second.also["autoplay"].on is False  # the guard stops it
    assert autostep.tick(first.session, controls, autostep.Playing()) is None  # paused: no step


def test_branches_fork_rename_switch_delete():
    state = branches.fork(stepped(2), CONTROLS, "alt").session
    assert state.branch.name == "alt" and len(state.branch.ids) == 2
    state = branches.rename(state, CONTROLS, "beta").session
    assert branches.switch(state, CONTROLS, MAIN).session.current == MAIN
    assert len(branches.delete(state, CONTROLS).session.branches) == 1
    with pytest.raises(ValueError, match="choose a branch"):
        branches.compare_branches(state, CONTROLS, None, {})


def test_compare_records_what_it_compared():
    state = branches.fork(stepped(2), CONTROLS, "alt").session
    outcome = branches.compare_branches(state, CONTROLS, MAIN, {})
    assert "Shared prefix" in outcome.also["comparison"] and "comparison" in outcome.also["computed"]


def test_logit_lens_has_one_row_per_layer_and_records_its_inputs():
    outcome = lens.read_layers(stepped(1), CONTROLS, {})
    rows = outcome.also["lens"]
    assert len(rows) == 3 and rows[-1][0] == "0 (embeddings)" and len(rows[0]) == 1 + lens.TOP_K
    assert "lens" in outcome.also["computed"]


def test_explain_targets_the_inspected_token_else_the_last_else_the_top_candidate():
    state = stepped(2)
    assert attribution_panel.explain_request(state, CONTROLS)["target_index"] == 1
    assert attribution_panel.explain_request(state.inspecting(0), CONTROLS)["target_index"] == 0
    with pytest.raises(ValueError, match="nothing to explain"):
        attribution_panel.explain_request(Session(), CONTROLS)


def test_a_conversation_opens_on_a_new_branch_and_leaves_the_work():
    work = stepped(2)
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    record = {"token": {"id": 19556}, "how": "greedy", "dist": None, "draw": None}
    recorded = chat_tab.record(work, history, (record,))
    outcome = chat_tab.open_in_explorer(recorded, CONTROLS)
    opened = outcome.session
    assert opened.branch.messages == ({"role": "user", "content": "Hi"},) and opened.branch.ids == (19556,)
    assert opened.branch.meta == (record,)
    assert opened.branches[MAIN].ids == work.branch.ids
    with pytest.raises(ValueError, match="no reply"):
        chat_tab.open_in_explorer(work, CONTROLS)


def test_export_then_import_gives_the_same_session(tmp_path):
    state = branches.fork(stepped(2), CONTROLS, "alt").session
    path = tmp_path / "s.json"
    path.write_text(session_file.export_text(state, CONTROLS, Prefs()))
    outcome = session_file.import_session(Session(), replace(CONTROLS, prompt="other"), str(path))
    assert outcome.session.branches.keys() == state.branches.keys() and outcome.also["prompt"] == CONTROLS.prompt
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        session_file.read_file(str(tmp_path / "bad.json"))


def test_settings_restore_what_was_saved_and_survive_garbage():
    saved = json.loads(json.dumps(settings.to_json(replace(CONTROLS, aggregation="sum"), Prefs().opened("lens", True))))
    restored = settings.restore(saved)
    assert restored["aggregation"] == "sum" and restored["lens_panel"].open is True
    assert settings.restore({"nonsense": 1})["aggregation"] == "l2"

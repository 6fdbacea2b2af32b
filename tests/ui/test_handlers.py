"""Explorer handlers on a tiny random model: state changes, and bad input that changes nothing."""

from __future__ import annotations

import gradio as gr
import pytest

from decoding.model import STORE
from ui import handlers, session

KNOBS = {
    "prompt": "The capital of France is", "system_prompt": "", "use_chat_template": False, "temperature": 0.7,
    "top_p": 0.9, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": "7",
    "top_k": 5, "stop_sequences": "", "constraint_enabled": False, "constraint_type": "regex",
    "constraint_schema": "", "llm_on": True,
}  # fmt: skip


@pytest.fixture(autouse=True)
def tiny_model(tiny):
    STORE.use(tiny)


def values(**changes) -> list:
    return [(KNOBS | changes)[name] for name in handlers.KNOB_FIELDS]


def state_of(out: tuple) -> dict:
    return out[handlers.OUTPUT_NAMES.index("state")]


def stepped(n: int) -> dict:
    state = session.new_session()
    for _ in range(n):
        state = state_of(handlers.step(state, *values()))
    return state


def test_steps_record_tokens_and_how_they_were_chosen():
    state = stepped(3)
    branch = session.current(state)
    assert len(branch["ids"]) == 3 and [m["how"] for m in branch["meta"]] == ["sampled"] * 3
    assert all(m["dist"]["tokens"] for m in branch["meta"])


def test_seeded_steps_repeat():
    assert session.current(stepped(3))["ids"] == session.current(stepped(3))["ids"]


def test_delete_last_and_clear():
    state = state_of(handlers.delete_last(stepped(2), *values()))
    assert len(session.current(state)["ids"]) == 1
    assert session.current(state_of(handlers.clear(state, *values())))["ids"] == []


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: handlers.delete_last(session.new_session(), *values()), "empty"),
        (lambda s: handlers.force_text(s, "", *values()), "empty"),
        (lambda s: handlers.switch_branch(s, "b99", *values()), "does not exist"),
        (lambda s: handlers.step(s, *values(temperature=-1)), "temperature"),
        (lambda s: handlers.step(s, *values(seed="x")), "seed"),
        (lambda s: handlers.step(s, *values(prompt="")), "prompt"),
    ],
)
def test_bad_input_raises_a_readable_error_and_keeps_the_state(call, words):
    state = stepped(2)
    before = session.current(state)["ids"][:]
    with pytest.raises(gr.Error, match=words):
        call(state)
    assert session.current(state)["ids"] == before


def test_forcing_text_with_the_model_off_appends_without_a_distribution():
    out = handlers.force_text(session.new_session(), " Paris", *values(llm_on=False))
    branch = session.current(state_of(out))
    assert branch["ids"] and branch["meta"][0]["dist"] is None
    with pytest.raises(gr.Error, match="switched off"):
        handlers.step(state_of(out), *values(llm_on=False))


def test_branching_from_an_earlier_token_keeps_the_original():
    state = stepped(3)
    original = session.current(state)["ids"][:]
    inspecting = session.inspecting(state, 1)
    rows = inspecting["branches"]["main"]["meta"][1]["dist"]["tokens"]
    other = next(r["id"] for r in rows if r["id"] != original[1])
    inspecting["last_final"] = {"rows": [r["id"] for r in rows]}
    evt = gr.SelectData(None, {"index": [[r["id"] for r in rows].index(other), 0], "value": ""})
    branched = state_of(handlers.force_candidate(evt, inspecting, *values()))
    assert session.current(branched)["ids"] == [original[0], other]
    assert branched["branches"]["main"]["ids"] == original


def test_settings_roundtrip_and_export_import(tmp_path):
    settings_values = [KNOBS.get(name, 1) for name in handlers.SETTING_FIELDS]
    saved = handlers.save_settings(*settings_values)
    assert handlers.restore_settings(saved) == settings_values
    path = handlers.export_session(stepped(2), *settings_values)
    out = handlers.import_session(path, session.new_session())
    imported = out[-1]
    assert len(session.current(imported)["ids"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(gr.Error, match="not valid JSON"):
        handlers.import_session(str(bad), session.new_session())


def test_logit_lens_has_one_row_per_layer_and_the_top_tokens():
    rows = handlers.logit_lens(stepped(1), *values())
    assert len(rows) == 3  # two layers of the tiny model plus the embeddings
    assert rows[-1][0] == "0 (embeddings)" and len(rows[0]) == 1 + handlers.LENS_TOP_K
    assert all(cell.endswith("%") for cell in rows[0][1:])

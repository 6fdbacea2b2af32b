"""Controls: every knob by name, request params, presets, each constraint type's own text."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from ui.controls import FIELDS, Controls, matching_preset, preset_values


def test_fields_are_the_dataclass_fields_and_values_are_read_by_name():
    assert tuple(f.name for f in fields(Controls)) == FIELDS
    components = {name: object() for name in reversed(FIELDS)}  # any order: values go by name
    data = {comp: (0.3 if name == "temperature" else None) for name, comp in components.items()}
    controls = Controls.read(data, components)
    assert controls.temperature == 0.3 and controls.top_p == Controls().top_p


def test_from_values_coerces_types_and_fills_defaults():
    controls = Controls.from_values({"top_k": 7.0, "use_chat_template": 1, "seed": None})
    assert controls.top_k == 7 and isinstance(controls.top_k, int) and controls.use_chat_template is True
    assert controls.seed == ""


def test_params_parse_seed_and_stop_sequences():
    params = replace(Controls(), seed=" 12 ", stop_sequences="a\n\nb").params()
    assert params["seed"] == 12 and params["stop_sequences"] == ["a", "b"]
    with pytest.raises(ValueError, match="seed"):
        replace(Controls(), seed="x").params()


def test_presets_set_the_knobs_and_knobs_find_their_preset():
    greedy = preset_values("greedy")
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0
    assert matching_preset(replace(Controls(), **greedy)) == "greedy"
    assert matching_preset(replace(Controls(), temperature=1.37)) == "custom"
    assert preset_values("custom") is None


def test_every_sampler_knob_reaches_the_request_and_presets_set_them_all():
    llama = preset_values("llama.cpp default")
    assert llama["sample_top_k"] == 40 and llama["min_p"] == 0.05 and llama["sampler_order"] == "llama.cpp"
    params = replace(Controls(), top_k=7, **llama).params()
    assert params["top_k"] == 40 and params["min_p"] == 0.05 and params["sampler_order"] == "llama.cpp"
    assert matching_preset(replace(Controls(), **llama)) == "llama.cpp default"


def test_the_default_prompt_and_preset_show_several_tokens_in_play_at_the_first_step(embedded):
    from backends.model import STORE
    from ui import actions
    from ui.state import Session

    STORE.use(embedded)
    dist = actions.refresh(Session(), Controls()).result["dist"]
    visible = [t["display"] for t in dist["tokens"] if t["p_final"] >= 0.05]
    assert len(visible) >= 2, visible

"""The sidebar's knob sliders: one per parameter of the sampler registry, with its label, ends, step and default."""

from __future__ import annotations

import gradio as gr

from service.public import SAMPLER_REGISTRY, DecodingParams
from ui.panels.sidebar import create_sidebar


def test_every_registry_parameter_has_its_slider_as_the_registry_describes_it():
    with gr.Blocks():
        components = create_sidebar()
    defaults = DecodingParams()
    for param in SAMPLER_REGISTRY.params:
        slider = components["sample_top_k" if param.name == "top_k" else param.name]
        assert isinstance(slider, gr.Slider), param.name
        expected = (param.slider.label, param.slider.low, param.slider.high, param.slider.step)
        assert (slider.label, slider.minimum, slider.maximum, slider.step) == expected, param.name
        assert slider.value == getattr(defaults, param.name), param.name
    assert components["top_k"].label == "Rows shown (top-k)"  # the controls' own top_k is the rows shown

"""The sampler chain in the explorer: the order control, the stage table's columns and the bars' stage menu."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backends.model import STORE
from decoding.sampling.params import SAMPLER_ORDERS
from service import operations as service
from tests.ui import chart
from ui.controls import Controls, matching_preset, preset_values
from ui.draw import bars, plots, render
from ui.request import request_for
from ui.state import Session

# a peaked first step (" Paris" about 77 %): what min-p cuts
LLAMA = replace(Controls(), **preset_values("llama.cpp default"), top_k=8, prompt="The capital of France is")


def _dist(controls: Controls) -> dict:
    return service.preview(request_for(Session(), controls))["dist"]


@pytest.fixture(autouse=True)
def model(embedded):
    """The real model: its peaked distribution is what min-p cuts."""
    STORE.use(embedded)


def test_named_and_custom_orders_reach_the_request():
    assert Controls().params()["sampler_order"] == "transformers"
    custom = replace(Controls(), sampler_order="custom", custom_order="xtc temperature, top_k top_p min_p typical_p "
                     "top_n_sigma epsilon_cutoff eta_cutoff")  # fmt: skip
    assert custom.params()["sampler_order"][:2] == ["xtc", "temperature"]
    assert matching_preset(custom) == "custom"


@pytest.mark.parametrize(
    ("text", "message"), [("top_k, top_k", "names 'top_k' twice"), ("temperature, top_q", "'top_q' is not a sampler")]
)
def test_a_bad_custom_order_is_refused_in_one_line(text, message):
    with pytest.raises(ValueError, match=message) as info:
        replace(Controls(), sampler_order="custom", custom_order=text).params()
    assert "\n" not in str(info.value)


def test_the_llama_cpp_preset_table_has_its_stages_in_llama_cpp_order_with_tokens_in_play():
    dist = _dist(replace(LLAMA, min_p=0.2))
    headers = render.stage_headers(dist)
    samplers = [h.split(" (")[0] for h in headers if h.split(" (")[0].replace("-", "_") in SAMPLER_ORDERS["llama.cpp"]]
    assert samplers == ["top-k", "top-p", "min-p", "temperature"]
    assert headers[headers.index(f"top-k ({dist['stage_counts']['top_k']:,})")] == "top-k (40)"
    cut = [row for row in render.stage_rows(dist) if "✂ cut by min-p" in row]
    assert cut, render.stage_rows(dist)
    assert any(row[4] == "✂ min-p" for row in render.candidate_rows(dist))


def test_the_stage_menu_shows_the_blue_bars_after_each_stage_and_only_the_cuts_so_far():
    dist = _dist(replace(LLAMA, min_p=0.2))
    value = bars.bars_value(dist)
    final = chart.seen(value)
    assert [chip.split(" (")[0] for chip in final.chips] == [plots.stage_title(s) for s in dist["stages"][:-1]] + [
        "all stages"
    ]
    assert final.checked == ["all"]
    after_top_k = chart.seen(value, "top_k")
    assert "p after top-k" in after_top_k.legend and bars.FINAL_NAME in final.legend
    rows = plots.shown_rows(dist)
    assert after_top_k.blue == pytest.approx([r.token["stages"]["top_k"] for r in rows], abs=5e-5)
    assert after_top_k.blue != final.blue
    assert "✂ cut by min-p (red: probability before the cut)" in final.legend
    assert not any(entry.startswith("✂ cut by min-p") for entry in after_top_k.legend)  # min-p runs after top-k

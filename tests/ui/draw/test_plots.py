"""The next-token bars (rows, widths, marks, legend, stage menu) and the timeline, on hand-made distributions."""

from __future__ import annotations

import math

import pytest

from decoding.sampling.params import DecodingParams
from decoding.sampling.presets import PRESETS
from tests.ui import chart
from ui.draw import bars, plots, timeline

STAGE_NAMES = ("base", "penalties", "temperature", "constraint", "top_p")


def _row(token_id: int, p_base: float, p_final: float, *, kept=True, valid=True, removed_by="absent") -> dict:
    row = {
        "id": token_id,
        "text": f"t{token_id}",
        "display": f"t{token_id}",
        "special": False,
        "p_base": p_base,
        "p_final": p_final,
        "kept": kept,
        "valid": valid,
        "stages": dict(zip(STAGE_NAMES, (p_base, p_base, p_base * 1.1, p_base * 1.2, p_final), strict=True)),
    }
    return row if removed_by == "absent" else row | {"removed_by": removed_by}


def _dist(rows: list[dict], greedy=False, pushed_down=()) -> dict:
    return {"tokens": rows, "greedy": greedy, "pushed_down": list(pushed_down), "entropy_final": 1.0}


def _marked(seen: chart.Seen, symbol: str) -> list[str]:
    return [label for label in seen.labels if symbol in label]


def _everything(seen: chart.Seen) -> list[str]:
    return [*seen.labels, *seen.legend, *seen.notes]


def test_all_kept_has_no_marks_and_no_mark_legend():
    seen = chart.seen(bars.bars_value(_dist([_row(1, 0.6, 0.6), _row(2, 0.4, 0.4)])))
    assert seen.labels == ["t1", "t2"]
    assert seen.legend == ["p_base (raw model)", "p_final (after all stages)"]
    assert seen.notes == ["60.0%", "40.0%"]
    assert seen.red == [None, None] and not seen.chips  # one stage or none: no stage menu


def test_bar_widths_are_the_probabilities():
    dist = _dist([_row(1, 0.61234, 0.7), _row(2, 0.3, 0.3), _row(3, 0.08766, 0.0, kept=False)])
    seen = chart.seen(bars.bars_value(dist))
    assert seen.ids == [1, 2, 3]
    assert seen.base == pytest.approx([row["p_base"] for row in dist["tokens"]], abs=5e-5)
    assert seen.blue[:2] == pytest.approx([0.7, 0.3], abs=5e-5)
    assert seen.blue[2] is None and seen.red[2] == pytest.approx(0.08766 * 1.2, abs=5e-5)


def test_top_p_cut_draws_a_red_bar_at_the_probability_before_the_cut_and_its_legend():
    rows = [_row(1, 0.7, 1.0), _row(2, 0.2, 0.0, kept=False), _row(3, 0.1, 0.0, kept=False)]
    seen = chart.seen(bars.bars_value(_dist(rows)))
    assert _marked(seen, "✂") == ["✂ t2", "✂ t3"]
    assert seen.red == [None, pytest.approx(0.2 * 1.2), pytest.approx(0.1 * 1.2)]  # the constraint stage
    assert seen.notes[1:] == ["✂ cut by top-p", "✂ cut by top-p"]
    assert [e for e in seen.legend if e.startswith("✂")] == ["✂ cut by top-p (red: probability before the cut)"]
    assert not any(entry.startswith(("○", "⊘", "↓")) for entry in seen.legend)


def test_greedy_is_its_own_mark_and_never_says_top_p():
    rows = [_row(1, 0.5, 1.0), _row(2, 0.3, 0.0, kept=False), _row(3, 0.2, 0.0, kept=False)]
    seen = chart.seen(bars.bars_value(_dist(rows, greedy=True)))
    assert _marked(seen, "○") == ["○ t2", "○ t3"]
    assert not _marked(seen, "✂") and seen.red == [None, None, None]
    assert not any("top-p" in text for text in _everything(seen))
    assert [entry for entry in seen.legend if entry.startswith("○")] == [plots.GREEDY.legend]
    assert seen.notes[1] == "○ not greedy's pick"


def test_removed_by_from_the_row_wins_over_kept_and_valid():
    rows = [_row(1, 0.5, 1.0, removed_by=None), _row(2, 0.5, 0.0, kept=False, removed_by="greedy")]
    seen = chart.seen(bars.bars_value(_dist(rows, greedy=False)))
    assert _marked(seen, "○") == ["○ t2"] and not _marked(seen, "✂")


def test_another_truncation_stage_is_cut_by_its_own_name():
    rows = [_row(1, 0.9, 1.0, removed_by=None), _row(2, 0.1, 0.0, kept=False, removed_by="min_p")]
    seen = chart.seen(bars.bars_value(_dist(rows)))
    assert any(entry.startswith("✂ cut by min-p") for entry in seen.legend)
    assert not any("top-p" in text for text in _everything(seen))


def test_constraint_mark_and_legend_only_when_a_row_is_forbidden():
    rows = [_row(1, 0.5, 1.0), _row(2, 0.5, 0.0, kept=False, valid=False)]
    seen = chart.seen(bars.bars_value(_dist(rows)))
    assert _marked(seen, "⊘") == ["⊘ t2"] and seen.notes[1] == "⊘ forbidden"
    assert plots.CONSTRAINT.legend in seen.legend
    assert not _marked(seen, "✂") and not any(entry.startswith("✂") for entry in seen.legend)


def test_pushed_down_rows_are_added_once_and_marked():
    rows = [_row(1, 0.3, 0.8), _row(2, 0.2, 0.2)]
    pushed = [_row(9, 0.5, 0.0, kept=False)]
    for dist in (_dist(rows, pushed_down=pushed), _dist(rows + pushed, pushed_down=pushed)):  # widened or not
        seen = chart.seen(bars.bars_value(dist))
        assert seen.labels == ["t1", "t2", "↓✂ t9"]
        assert plots.PUSHED_DOWN.legend in seen.legend
        assert seen.base == [0.3, 0.2, 0.5]
    assert plots.PUSHED_DOWN.legend not in chart.seen(bars.bars_value(_dist(rows))).legend


def test_chosen_row_is_marked_and_highlighted_with_a_legend_entry():
    seen = chart.seen(bars.bars_value(_dist([_row(1, 0.6, 0.6), _row(2, 0.4, 0.4)]), chosen=2))
    assert seen.labels == ["t1", "▶ t2"] and seen.chosen == ["▶ t2"]
    assert plots.CHOSEN.legend in seen.legend


def test_ghost_bars_show_the_previous_p_final_by_token_id():
    dist = _dist([_row(1, 0.6, 0.6), _row(2, 0.4, 0.4)])
    seen = chart.seen(bars.bars_value(dist, ghost={2: 0.25}))
    assert seen.ghost == [0.0, 0.25] and bars.GHOST_NAME in seen.legend
    assert not chart.seen(bars.bars_value(dist)).ghost


def test_token_text_is_escaped():
    row = _row(1, 1.0, 1.0) | {"display": '<b onclick="x">&amp;</b>'}
    value = bars.bars_value(_dist([row]))
    texts = [*value["figure"]["layout"]["yaxis"]["ticktext"], *value["figure"]["data"][0]["customdata"]]
    assert texts and not any("<b" in text or 'onclick="' in text for text in texts)  # Plotly reads tags in texts
    assert chart.seen(value).labels == ['<b onclick="x">&amp;</b>']


def test_the_stage_menu_has_each_stage_with_its_widths_and_the_cuts_applied_so_far():
    rows = [_row(1, 0.5, 1.0), _row(2, 0.3, 0.0, kept=False), _row(3, 0.2, 0.0, kept=False, valid=False)]
    counts = dict(zip(STAGE_NAMES, (49152, 49152, 49152, 2, 1), strict=True))
    dist = _dist(rows) | {"stages": list(STAGE_NAMES), "stage_counts": counts}
    value = bars.bars_value(dist)
    final = chart.seen(value)
    chips = ["base (49,152)", "penalties (49,152)", "temperature (49,152)", "constraint (2)", "all stages (1)"]
    assert final.chips == chips and final.checked == ["all"]
    for stage in STAGE_NAMES[:-1]:
        seen = chart.seen(value, stage)
        cut_yet = stage == "constraint"  # the constraint removed t3 there; top-p cuts t2 only at the end
        expected = [row["stages"][stage] for row in rows]
        assert seen.blue == pytest.approx(expected) and seen.red == [None, None, None]
        assert seen.notes[2] == ("⊘ forbidden" if cut_yet else f"{expected[2]:.1%}")
        assert [e for e in seen.legend if "(after" in e or e.startswith("p after")] == [f"p after {stage}"]
        assert not any(entry.startswith("✂") for entry in seen.legend)
    assert final.blue == [1.0, None, 0.0] and final.red == [None, pytest.approx(0.3 * 1.2), None]
    assert "✂ cut by top-p (red: probability before the cut)" in final.legend
    assert chart.seen(value, "all") == final  # the end's button shows what shows at first


def test_each_stage_button_is_named_after_its_stage_whatever_the_chain():
    """The page keeps the button picked by name across figures, so a stage stays picked while stepping."""
    rows = [_row(1, 0.5, 1.0), _row(2, 0.5, 0.0, kept=False)]
    short = _dist(rows) | {"stages": ["base", "top_p"]}
    long = _dist(rows) | {"stages": ["base", "penalties", "temperature", "constraint", "top_p"]}
    names = [[b["name"] for b in chart.menu(bars.bars_value(d)["figure"], "stage")["buttons"]] for d in (short, long)]
    assert names == [["base", "all"], ["base", "penalties", "temperature", "constraint", "all"]]
    assert set(names[1][:-1]) <= set(bars.STAGE_SLOTS)


def test_a_chain_of_unknown_stages_shows_the_final_bars_without_a_menu():
    row = _row(1, 1.0, 1.0) | {"stages": {"base": 1.0, "mystery": 1.0}}
    seen = chart.seen(bars.bars_value(_dist([row]) | {"stages": ["base", "mystery"]}))
    assert not seen.chips and seen.blue == [1.0] and bars.FINAL_NAME in seen.legend


def test_no_distribution_shows_the_reason():
    value = bars.bars_value(None, empty="No distribution: finished (eos).")
    seen = chart.seen(value)
    assert not seen.labels and not seen.legend and value["step"] is None
    assert [a["text"] for a in value["figure"]["layout"]["annotations"]] == ["No distribution: finished (eos)."]
    assert bars.bars_value(None)["figure"]["layout"]["annotations"][0]["text"] == bars.FINISHED
    assert bars.bars_value(None, empty="<b>")["figure"]["layout"]["annotations"][0]["text"] == "&lt;b&gt;"


def test_shown_rows_for_a_table():
    rows = plots.shown_rows(_dist([_row(1, 0.9, 1.0), _row(2, 0.1, 0.0, kept=False)], greedy=True))
    assert [(r.removed_by, r.label) for r in rows] == [(None, "t1"), ("greedy", "○ t2")]
    forbidden = plots.shown_rows(_dist([_row(2, 0.1, 0.0, kept=False, valid=False)]))
    assert [(r.removed_by, r.label, r.cut) for r in forbidden] == [("constraint", "⊘ t2", False)]


def test_timeline_surprisal_and_entropy_per_token():
    meta = [
        {"token": {"id": 1, "display": "a"}, "dist": _dist([_row(1, 0.5, 0.25)]) | {"entropy_final": -0.0}},
        {"token": {"id": 7, "display": "b"}, "dist": None},  # forced with the model off: no point
        {"token": {"id": 9, "display": "c"}, "dist": _dist([_row(1, 0.5, 1.0)], pushed_down=[_row(9, 0.5, 0.0)])},
    ]
    fig = timeline.timeline_figure(meta)
    entropy, surprisal, surprisal_base = (list(t.y) for t in fig.data)
    assert list(fig.data[0].x) == [1, 3]
    assert entropy == [0.0, 1.0]
    assert surprisal == [pytest.approx(-math.log2(0.25)), 30.0]  # p_final 0 (forced): capped
    assert surprisal_base == [pytest.approx(1.0), pytest.approx(1.0)]
    assert not timeline.timeline_figure([]).data[0].x


@pytest.fixture(scope="module")
def summarized(tokenizer):
    """Real distribution rows: random logits through the decoding stages, shown with the embedded tokenizer."""
    import torch

    from decoding import distribution
    from decoding.tokens import TokenView

    logits = torch.randn(len(tokenizer), generator=torch.Generator().manual_seed(3))
    logits[1000:1012] = 14 - 0.6 * torch.arange(12)  # a peaked head, so top-p 0.5 cuts inside the top 10
    context = [1000, 1001, 1002]  # the three most likely tokens are repeated

    def summarize(params: DecodingParams) -> dict:
        stages = distribution.compute(logits, context, context, params)
        return distribution.summarize(stages, TokenView(tokenizer), 10).as_dict()

    return summarize


def test_real_rows_under_the_greedy_preset_never_say_top_p(summarized):
    dist = summarized(PRESETS["greedy"].params)
    seen = chart.seen(bars.bars_value(dist))
    assert len(_marked(seen, "○")) == len(dist["tokens"]) - 1
    assert not any("top-p" in text or "✂" in text for text in _everything(seen))


def test_real_rows_cut_by_top_p_are_exactly_the_red_bars(summarized):
    dist = summarized(DecodingParams(temperature=1.0, top_p=0.5))
    cut_ids = [r["id"] for r in dist["tokens"] if not r["kept"]]
    seen = chart.seen(bars.bars_value(dist))
    assert [token_id for token_id, red in zip(seen.ids, seen.red, strict=True) if red is not None] == cut_ids
    assert cut_ids and len(_marked(seen, "✂")) == len(cut_ids)


def test_real_rows_pushed_down_by_a_penalty_are_shown(summarized):
    dist = summarized(DecodingParams(temperature=1.0, top_p=1.0, repetition_penalty=3.0))
    assert dist["pushed_down"]
    seen = chart.seen(bars.bars_value(dist))
    assert _marked(seen, "↓") == [f"↓ {r['display']}" for r in dist["pushed_down"]]


def test_the_log_scale_is_picked_first_spans_four_decades_and_the_linear_button_switches_in_the_page():
    figure = bars.bars_value(_dist([_row(1, 0.5, 1.0), _row(2, 0.01, 0.001)]))["figure"]
    axis = figure["layout"]["xaxis"]
    assert (axis["type"], axis["title"]["text"]) == ("log", "probability (log scale)")
    assert axis["range"] == [-4, 0]  # log10: 0.01% to 100%
    assert axis["tickvals"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert axis["ticktext"] == ["0.01%", "0.1%", "1%", "10%", "100%"]
    scale = chart.menu(figure, "scale")
    assert [b["name"] for b in scale["buttons"]] == ["log", "linear"] and scale["active"] == 0
    linear = scale["buttons"][1]
    assert linear["method"] == "relayout"  # Plotly relayouts the axis in the page: no server round trip
    assert linear["args"][0] == {
        "xaxis.type": "linear", "xaxis.range": [0, 1], "xaxis.tickvals": None, "xaxis.ticktext": None,
        "xaxis.tickformat": ".0%", "xaxis.title.text": "probability (linear scale)",
    }  # fmt: skip


def test_hover_gives_each_bar_its_exact_value_and_the_mode_bar_downloads_a_png():
    figure = bars.bars_value(_dist([_row(1, 0.612345678, 0.7), _row(2, 0.387654322, 0.3)]))["figure"]
    assert all("%{x:.6f}" in trace["hovertemplate"] for trace in figure["data"] if trace["type"] == "bar")
    assert figure["config"]["toImageButtonOptions"]["format"] == "png"
    assert "toImage" not in figure["config"]["modeBarButtonsToRemove"]


def test_rows_of_an_edited_model_carry_the_unedited_p_final_as_a_ghost_series():
    rows = [_row(1, 0.6, 0.75) | {"p_final_unedited": 0.5}, _row(2, 0.4, 0.25) | {"p_final_unedited": 0.5}]
    figure = bars.bars_value(_dist(rows))["figure"]
    unedited = [t for t in figure["data"] if t["name"] == "p_final, unedited model"]
    assert len(unedited) == 1 and unedited[0]["x"] == [0.5, 0.5] and unedited[0].get("visible", True)
    assert "p_final, unedited model" in chart.seen(bars.bars_value(_dist(rows))).legend
    plain = [_row(1, 0.6, 0.6) | {"p_final_unedited": None}]  # the field present, no edit: no series
    assert "p_final, unedited model" not in chart.seen(bars.bars_value(_dist(plain))).legend

"""The attribution colour scale and both panels that use it, on hand-made results (no model)."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest

from ui.draw import heatmap

RGBA = re.compile(r"background:rgba\((\d+), (\d+), (\d+), ([\d.]+)\)")
BLUE, RED, VIOLET = (37, 99, 235), (220, 38, 38), (124, 58, 237)


def _result(normalized: list[float], method="saliency", aggregation="l2", **extra) -> dict:
    names = {"l2": "L2 norm over the embedding dimension", "sum": "signed sum over the embedding dimension"}
    return {
        "method": method,
        "aggregation": names.get(aggregation, aggregation),
        "normalized": normalized,
        "scores": normalized,
        "target": {"display": "␣mat"},
        "target_index": 2,
        "context_tokens": [{"display": f"w{i}"} for i in range(len(normalized))],
        "elapsed_s": 0.25,
    } | extra


def _colours(styles: list[str]) -> list[tuple[tuple[int, int, int], float]]:
    parsed = [RGBA.search(style).groups() for style in styles]
    return [((int(r), int(g), int(b)), float(a)) for r, g, b, a in parsed]


def test_the_signed_field_chooses_the_scale_whatever_the_aggregation_says():
    described_as_sum = _result([0.5, -0.5], aggregation="sum", signed=False)
    assert {rgb for rgb, _ in _colours(heatmap.token_styles(described_as_sum))} == {VIOLET}
    assert heatmap.UNSIGNED_WORDS in heatmap.legend(described_as_sum)


def test_unsigned_scores_are_one_hue_darker_for_more():
    colours = _colours(heatmap.token_styles(_result([0.1, 0.6, 0.3], signed=False)))
    assert {rgb for rgb, _ in colours} == {VIOLET}
    alphas = [alpha for _, alpha in colours]
    assert alphas[1] > alphas[2] > alphas[0]
    assert alphas == pytest.approx([0.08 + 0.8 * s / 0.6 for s in (0.1, 0.6, 0.3)], abs=1e-3)


def test_signed_scores_blue_for_red_against():
    scores = [0.5, -1.0, 0.25, 0.0]
    colours = _colours(heatmap.token_styles(_result(scores, signed=True)))
    assert [rgb for rgb, _ in colours] == [BLUE, RED, BLUE, BLUE]
    assert [alpha for _, alpha in colours] == pytest.approx([0.08 + 0.8 * abs(s) for s in scores], abs=1e-3)


def test_legend_words_match_the_scale():
    unsigned = heatmap.legend(_result([0.5], signed=False))
    signed = heatmap.legend(_result([0.5], signed=True))
    assert heatmap.UNSIGNED_WORDS in unsigned and "red" not in unsigned and "blue" not in unsigned
    assert heatmap.SIGNED_WORDS in signed and "violet" not in signed


def test_the_legend_key_uses_the_hues_it_names():
    assert {rgb for rgb, _ in _colours(heatmap.swatches(False).split("</span>")[:-1])} == {VIOLET}
    assert {rgb for rgb, _ in _colours(heatmap.swatches(True).split("</span>")[:-1])} == {BLUE, RED}


def test_hover_and_explain_panels_paint_the_same_colours(monkeypatch):
    result = _result([0.2, -0.7, 0.1], signed=True)
    monkeypatch.setattr(heatmap.service, "attribution", lambda request: result)
    hover = heatmap.explain([json.dumps({"prompt": "p"}), 0, None, "saliency"])
    explained = heatmap.explain_html(result)
    explain_styles = re.findall(r'class="attr-cell" style="([^"]+)"', explained)
    assert _colours(hover["styles"]) == _colours(explain_styles)
    assert hover["titles"] == ["score 0.2000", "score -0.7000", "score 0.1000"]
    assert heatmap.SIGNED_WORDS in hover["legend_html"] and heatmap.SIGNED_WORDS in explained
    assert "→ ␣mat" in explained


def test_hover_reports_errors_in_the_words_of_the_screen_instead_of_raising(monkeypatch):
    def refuse(request):
        raise ValueError("target_index 9 is out of range")

    monkeypatch.setattr(heatmap.service, "attribution", refuse)
    assert heatmap.explain(["{}", 9, None, "attention"]) == {"error": "the position to explain 9 is out of range"}
    monkeypatch.setattr(heatmap.service, "attribution", lambda request: 1 / 0)
    assert "ZeroDivisionError" in heatmap.explain(["{}", 0, None, "attention"])["error"]


def test_explain_html_escapes_token_text():
    result = _result([1.0], signed=False) | {"context_tokens": [{"display": "<b>"}]}
    assert "&lt;b&gt;" in heatmap.explain_html(result) and "<b>" not in heatmap.explain_html(result)


def test_all_zero_scores_are_the_palest_cells():
    assert [alpha for _, alpha in _colours(heatmap.token_styles(_result([0.0, 0.0], signed=True)))] == [0.08, 0.08]


def test_panel_marks_completion_tokens_hoverable_and_embeds_the_request():
    preview = {
        "prompt_tokens": [{"display": "a"}],
        "completion_tokens": [{"display": "b"}],
        "dist": {"tokens": [{"id": 7, "display": "c"}]},
    }
    html = heatmap.panel_html({"prompt": "a"}, preview, "integrated_gradients")
    assert 'data-ci="0"' in html and 'data-cand="7"' in html and 'data-hover=""' in html
    assert "&quot;prompt&quot;" in html


@pytest.mark.parametrize(
    ("method", "aggregation", "hues"),
    [("attention", "l2", {VIOLET}), ("saliency", "l2", {VIOLET}), ("input_x_gradient", "sum", {BLUE, RED})],
)
def test_real_results_are_painted_by_their_kind(tiny, method, aggregation, hues):
    from attribution import attribute

    ids = [1, 504, 2671, 314, 260, 3209, 30, 1004, 288, 7428]
    result = attribute(tiny, ids, 281, method, aggregation=aggregation, use_cache=False).as_dict()
    colours = _colours(heatmap.token_styles(result))
    assert {rgb for rgb, _ in colours} == hues
    negative = [rgb for (rgb, _), score in zip(colours, result["normalized"], strict=True) if score < 0]
    assert set(negative) <= ({RED} if result["signed"] else {VIOLET})


def test_hovering_uses_the_aggregation_and_granularity_of_the_panel(monkeypatch):
    from ui.controls import Controls
    from ui.request import attribution_request
    from ui.state import Session

    controls = Controls(aggregation="sum", granularity="word")
    preview = {"prompt_tokens": [{"display": "a"}], "completion_tokens": [{"display": "b"}], "dist": None}
    page = heatmap.panel_html(attribution_request(Session(), controls), preview, "saliency")
    embedded = json.loads(html_lib.unescape(re.search(r'data-request="([^"]*)"', page).group(1)))
    asked = []
    monkeypatch.setattr(
        heatmap.service, "attribution", lambda request: asked.append(request) or _result([1.0], signed=True)
    )
    heatmap.explain([json.dumps(embedded), 0, None, "saliency"])
    assert asked[0]["aggregation"] == "sum" and asked[0]["granularity"] == "word"
    assert asked[0]["method"] == "saliency" and asked[0]["target_index"] == 0 and asked[0]["target_token_id"] is None


def test_every_result_is_headed_by_its_position_and_token():
    head = heatmap.heading(_result([0.5, 0.5]))
    assert head == "Token 3 of the completion: ␣mat"
    foiled = _result([0.5, 0.5], contrast={"display": "␣rug"}, signed=False)
    assert heatmap.heading(foiled) == "Token 3 of the completion: ␣mat rather than ␣rug"
    for html in (heatmap.legend_html(foiled), heatmap.explain_html(foiled)):
        assert html.index("Token 3 of the completion") < html.index("attr-legend-text")

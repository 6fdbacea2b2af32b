"""The bar chart's rows, marks and legend, and the timeline, on hand-made distributions (no model)."""

from __future__ import annotations

import json
import math

import pytest

from decoding.params import DecodingParams
from decoding.presets import PRESETS
from ui import plots, timeline

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


def _legend(fig) -> list[str]:
    return [trace.name for trace in fig.data]


def _labels(fig) -> list[str]:
    return list(fig.layout.yaxis.ticktext)


def _marked(fig, symbol: str) -> list[str]:
    return [label for label in _labels(fig) if symbol in label]


def _texts(fig) -> list[str]:
    return [text for trace in fig.data if trace.text for text in trace.text if text]


def test_all_kept_has_no_marks_and_no_mark_legend():
    fig = plots.distribution_figure(_dist([_row(1, 0.6, 0.6), _row(2, 0.4, 0.4)]))
    assert _labels(fig) == ["t1", "t2"]
    assert _legend(fig) == ["p_base (raw model)", "p_final (after all stages)"]
    assert _texts(fig) == ["60.0%", "40.0%"]


def test_top_p_cut_draws_a_red_bar_at_the_probability_before_the_cut_and_its_legend():
    rows = [_row(1, 0.7, 1.0), _row(2, 0.2, 0.0, kept=False), _row(3, 0.1, 0.0, kept=False)]
    fig = plots.distribution_figure(_dist(rows))
    assert _marked(fig, "✂") == ["✂ t2", "✂ t3"]
    cut = [t for t in fig.data if t.name.startswith("✂ cut by top-p")]
    assert len(cut) == 1 and cut[0].marker.color == plots.CUT_COLOR
    assert list(cut[0].x) == [None, pytest.approx(0.2 * 1.2), pytest.approx(0.1 * 1.2)]  # the constraint stage
    assert cut[0].offsetgroup == next(t for t in fig.data if t.name.startswith("p_final")).offsetgroup
    assert not any(name.startswith(("○", "⊘", "↓")) for name in _legend(fig))


def test_greedy_is_its_own_mark_and_never_says_top_p():
    rows = [_row(1, 0.5, 1.0), _row(2, 0.3, 0.0, kept=False), _row(3, 0.2, 0.0, kept=False)]
    fig = plots.distribution_figure(_dist(rows, greedy=True))
    assert _marked(fig, "○") == ["○ t2", "○ t3"]
    assert not _marked(fig, "✂")
    assert not any("top-p" in text for text in [*_legend(fig), *_texts(fig), *_labels(fig)])
    assert [name for name in _legend(fig) if name.startswith("○")] == [plots.GREEDY.legend]


def test_removed_by_from_the_row_wins_over_kept_and_valid():
    rows = [_row(1, 0.5, 1.0, removed_by=None), _row(2, 0.5, 0.0, kept=False, removed_by="greedy")]
    fig = plots.distribution_figure(_dist(rows, greedy=False))
    assert _marked(fig, "○") == ["○ t2"] and not _marked(fig, "✂")


def test_another_truncation_stage_is_cut_by_its_own_name():
    rows = [_row(1, 0.9, 1.0, removed_by=None), _row(2, 0.1, 0.0, kept=False, removed_by="min_p")]
    fig = plots.distribution_figure(_dist(rows))
    assert any(name.startswith("✂ cut by min-p") for name in _legend(fig))
    assert not any("top-p" in name for name in _legend(fig))


def test_constraint_mark_and_legend_only_when_a_row_is_forbidden():
    rows = [_row(1, 0.5, 1.0), _row(2, 0.5, 0.0, kept=False, valid=False)]
    fig = plots.distribution_figure(_dist(rows))
    assert _marked(fig, "⊘") == ["⊘ t2"]
    assert plots.CONSTRAINT.legend in _legend(fig)
    assert not _marked(fig, "✂") and not any(name.startswith("✂") for name in _legend(fig))


def test_pushed_down_rows_are_added_once_and_marked():
    rows = [_row(1, 0.3, 0.8), _row(2, 0.2, 0.2)]
    pushed = [_row(9, 0.5, 0.0, kept=False)]
    for dist in (_dist(rows, pushed_down=pushed), _dist(rows + pushed, pushed_down=pushed)):  # widened or not
        fig = plots.distribution_figure(dist)
        assert _labels(fig) == ["t1", "t2", "↓✂ t9"]
        assert plots.PUSHED_DOWN.legend in _legend(fig)
        assert list(next(t for t in fig.data if t.name.startswith("p_base")).x) == [0.3, 0.2, 0.5]
    assert plots.PUSHED_DOWN.legend not in _legend(plots.distribution_figure(_dist(rows)))


def test_chosen_row_is_marked_with_a_legend_entry():
    fig = plots.distribution_figure(_dist([_row(1, 0.6, 0.6), _row(2, 0.4, 0.4)]), chosen=2)
    assert _labels(fig) == ["t1", "▶ t2"]
    assert plots.CHOSEN.legend in _legend(fig)


def test_ghost_bars_show_the_previous_p_final_by_token_id():
    fig = plots.distribution_figure(_dist([_row(1, 0.6, 0.6), _row(2, 0.4, 0.4)]), ghost={2: 0.25})
    ghost = next(t for t in fig.data if t.name.startswith("p_final before"))
    assert list(ghost.x) == [0.0, 0.25]


def test_the_figure_is_light_json_without_a_template():
    rows = [_row(i, 0.1, 0.1 if i < 5 else 0.0, kept=i < 5) for i in range(10)]
    data = json.loads(plots.distribution_figure(_dist(rows)).to_json())
    assert data["layout"]["template"] == {}
    assert len(data["data"]) <= 6
    assert "annotations" not in data["layout"]


def test_no_distribution_shows_the_reason():
    fig = plots.distribution_figure(None, empty="finished: eos")
    assert fig.layout.annotations[0].text == "finished: eos" and not fig.data


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
    fig = plots.distribution_figure(dist)
    assert len(_marked(fig, "○")) == len(dist["tokens"]) - 1
    assert not any("top-p" in text or "✂" in text for text in [*_legend(fig), *_texts(fig), *_labels(fig)])


def test_real_rows_cut_by_top_p_are_exactly_the_red_bars(summarized):
    dist = summarized(DecodingParams(temperature=1.0, top_p=0.5))
    cut_ids = [r["id"] for r in dist["tokens"] if not r["kept"]]
    fig = plots.distribution_figure(dist)
    red = next(t for t in fig.data if t.name.startswith("✂ cut by top-p"))
    assert [dist["tokens"][i]["id"] for i, x in enumerate(red.x) if x is not None] == cut_ids
    assert cut_ids and len(_marked(fig, "✂")) == len(cut_ids)


def test_real_rows_pushed_down_by_a_penalty_are_shown(summarized):
    dist = summarized(DecodingParams(temperature=1.0, top_p=1.0, repetition_penalty=3.0))
    assert dist["pushed_down"]
    fig = plots.distribution_figure(dist)
    assert _marked(fig, "↓") == [f"↓ {r['display']}" for r in dist["pushed_down"]]

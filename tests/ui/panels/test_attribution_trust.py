"""Attribution a user can check: a foil from the candidates, words, the faithfulness line, methods compared."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backends.model import STORE
from service import operations as service
from tests.ui.helpers import CONTROLS, stepped
from ui import explain_target, view
from ui.draw import heatmap
from ui.panels import attribution_panel
from ui.state import Session
from ui.view import Frame

SALIENCY = replace(CONTROLS, attribution_method="saliency")


def _foils(session: Session, controls) -> list[tuple[str, str]]:
    """The foil picker's choices at the explained position, as the view draws them."""
    dist = service.preview(view.request_for(session, controls)).get("dist")
    return explain_target.foil_choices(explain_target.position(session, controls, dist))


def _explained(session: Session, controls) -> dict:
    return service.attribution(attribution_panel.explain_request(session, controls))


@pytest.fixture(autouse=True)
def model(tiny):
    STORE.use(tiny)


def test_a_foil_and_words_reach_the_request_and_the_answer():
    long_words = replace(SALIENCY, prompt="Photosynthesis in chloroplasts is")
    session = stepped(2, long_words)
    foil = _foils(session, long_words)[1][1]
    foil_id = explain_target.picked(foil, explain_target.position_key(session, long_words))
    controls = replace(long_words, contrast_token=foil, granularity="word")
    request = attribution_panel.explain_request(session, controls)
    assert request["contrast_token_id"] == foil_id and request["granularity"] == "word"
    result = service.attribution(request)
    assert result["contrast"]["id"] == foil_id and result["words"]
    assert f"rather than {result['contrast']['display']}" in heatmap.legend(result)
    cells = heatmap.explain_html(result).count('class="attr-cell attr-word"')
    assert cells == len(result["words"]) < len(result["context_tokens"])
    assert "contrast_token_id" not in attribution_panel.explain_request(session, long_words)


def test_every_heatmap_says_how_faithful_it_is_in_plain_words():
    result = _explained(stepped(2), SALIENCY)
    line = heatmap.faithfulness_line(result)
    numbers = result["faithfulness"]
    assert line.startswith("Faithfulness: top 20 % of tokens") and f"drops {numbers['comprehensiveness']:.2f}" in line
    assert f"random tokens: {numbers['random_baseline']:.2f}" in line
    assert line in heatmap.legend_html(result) and "Faithfulness" in heatmap.explain_html(result)
    faked = result | {"faithfulness": {"comprehensiveness": 0.1, "random_baseline": 0.4, "k": 1}}
    assert heatmap.faithfulness_line(faked).endswith("no better than chance")
    assert heatmap.faithfulness_line(
        faked | {"faithfulness": {"comprehensiveness": 2, "random_baseline": 0.4, "k": 1}}
    ).endswith("→ better than chance")


def test_two_methods_on_one_target_are_compared_and_disagreement_said_plainly():
    target = {"target_id": 7, "contrast_token_id": None, "target_index": 1}
    saliency = target | {"method": "saliency", "normalized": [0.1, 0.2, 0.3, 0.4]}
    runs = attribution_panel.recorded_runs({}, saliency, "same")
    assert attribution_panel.agreement_note(runs, saliency) == ""  # one method: nothing to compare
    ablation = target | {"method": "ablation", "normalized": [0.4, 0.3, 0.2, 0.1]}
    runs = attribution_panel.recorded_runs({attribution_panel.RUNS: runs}, ablation, "same")
    note = attribution_panel.agreement_note(runs, ablation)
    assert "Spearman ρ between ablation and saliency: **-1.00**, they **disagree**" in note
    agreeing = ablation | {"normalized": [0.1, 0.25, 0.3, 0.5]}
    runs = attribution_panel.recorded_runs({attribution_panel.RUNS: runs}, agreeing, "same")
    assert "**1.00**, they broadly agree" in attribution_panel.agreement_note(runs, agreeing)
    attention = saliency | {"method": "attention"}
    other = attribution_panel.recorded_runs({attribution_panel.RUNS: runs}, attention, "another target")
    assert attribution_panel.agreement_note(other, attention) == ""


def test_the_hover_panel_offers_the_inspected_positions_candidates_there():
    session = stepped(2).inspecting(0)
    result = service.preview(view.request_for(session, CONTROLS))
    frame = Frame(session, SALIENCY, view.Prefs(frozenset({"attribution"})), result)
    html = view._hover(frame)
    assert 'data-at="0"' in html and "Candidates at token 1" in html
    assert f'data-cand="{session.branch.meta[0]["dist"]["tokens"][1]["id"]}"' in html
    candidate = session.branch.meta[0]["dist"]["tokens"][1]["id"]
    out = heatmap.explain([json.dumps(view.attribution_request(session, SALIENCY)), 0, candidate, "saliency"])
    assert "error" not in out and len(out["styles"]) == len(result["prompt_tokens"])


@pytest.mark.parametrize("granularity", ["token", "word"])
def test_word_scores_paint_every_token_of_a_word_alike(granularity):
    session = stepped(2)
    result = _explained(session, replace(SALIENCY, granularity=granularity))
    scores = heatmap.token_scores(result)
    assert len(scores) == len(result["context_tokens"])
    if granularity == "word":
        for word in result["words"]:
            assert set(scores[word["start"] : word["end"]]) == {word["normalized"]}


def test_explain_can_target_another_candidate_at_the_inspected_position():
    session = stepped(2).inspecting(0)
    at = explain_target.position(session, SALIENCY, None)
    choices = explain_target.target_choices(at)
    assert choices[0] == (f"{session.branch.meta[0]['token']['display']} (the token there)", "")
    candidate = explain_target.picked(choices[1][1], at.key)
    request = attribution_panel.explain_request(session, replace(SALIENCY, explain_token=choices[1][1]))
    assert request["target_index"] == 0 and request["target_token_id"] == candidate
    result = service.attribution(request)
    assert result["target"]["id"] == candidate and result["target_index"] == 0
    assert heatmap.heading(result) == f"Token 1 of the completion: {result['target']['display']}"


def test_changing_an_attribution_setting_keeps_the_inspected_token():
    session = stepped(2).inspecting(0)
    for changed in (replace(SALIENCY, granularity="word"), replace(SALIENCY, contrast_token="28")):
        assert attribution_panel.setting_changed(session, changed).session.inspect == 0

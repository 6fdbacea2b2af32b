"""Rendering results for the components: token spans, table rows, stage rows, status and model lines."""

from __future__ import annotations

from ui.draw import render
from ui.state import Branch, Session


def row(token_id: int, p_base: float, p_final: float, removed_by: str | None = None) -> dict:
    stages = {"base": p_base, "penalties": p_base, "temperature": p_base, "top_p": p_final}
    return {"id": token_id, "display": f"t{token_id}", "text": f"t{token_id}", "special": False, "p_base": p_base,
            "p_final": p_final, "kept": removed_by is None, "valid": removed_by != "constraint",
            "removed_by": removed_by, "stages": stages}  # fmt: skip


DIST = {
    "tokens": [row(1, 0.6, 1.0), row(2, 0.3, 0.0, "top_p"), row(3, 0.05, 0.0, "constraint")],
    "pushed_down": [row(4, 0.04, 0.0, "top_p")],
    "stages": ["base", "penalties", "temperature", "top_p"],
    "greedy": False,
}
RESULT = {
    "prompt_tokens": [{"display": "Hi", "special": False}, {"display": "<s>", "special": True}],
    "completion_tokens": [{"display": "a", "special": False}, {"display": "b", "special": False}],
    "completion_ids": [5, 6], "dist": None, "finished": True, "finish_reason": "stop_sequence", "notice": "",
}  # fmt: skip


def test_candidate_rows_are_the_display_rows_then_the_pushed_down_ones_with_their_status():
    rows = render.candidate_rows(DIST)
    assert [r[1] for r in rows] == [1, 2, 3, 4]
    assert rows[0][0] == "t1" and rows[0][2] == "60.0%" and rows[0][4] == "kept"
    assert rows[1][4] == "✂ top-p" and rows[2][4].startswith("⊘") and rows[3][4].startswith("↓")
    assert render.candidate_rows(None) == []


def test_stage_rows_follow_the_distribution_stages():
    assert render.stage_headers(DIST) == ["token", "base", "penalties", "temperature", "top-p"]
    assert render.stage_rows(DIST)[1] == ["t2", "30.0%", "30.0%", "30.0%", "✂ cut by top-p"]
    assert render.stage_headers(None)[1:] == ["base", "penalties", "temperature", "constraint", "top-p"]


def test_token_spans_label_prompt_special_and_how_each_token_was_chosen():
    meta = ({"how": "sampled"}, {"how": "forced_text"})
    assert render.token_spans(RESULT, meta) == [("Hi", "prompt"), ("<s>", "special"), ("a", "sampled"), ("b", "forced")]


def test_the_status_line_names_count_branch_inspection_and_finish():
    session = Session().with_branch(Branch("main", (5, 6))).inspecting(0)
    line = render.status_line(RESULT, session, "hello")
    assert line.startswith("**2** completion tokens after a **2**-token prompt")
    assert "branch **main**" in line and "inspecting token 1" in line
    assert "finished: stop sequence" in line and "*hello*" in line


def test_the_status_line_counts_one_token_in_the_singular():
    one = RESULT | {"completion_ids": [5]}
    assert render.status_line(one, Session()).startswith("**1** completion token after a **2**-token prompt")
    assert render.status_line(RESULT | {"completion_ids": []}, Session()).startswith("**0** completion tokens")


def test_a_branch_named_branch_is_not_called_branch_twice():
    session = Session().forked(0)
    line = render.status_line(RESULT, session)
    assert f"**{session.branch.name}**" in line and "branch branch" not in line.lower()
    assert render.branch_named("main") == "branch **main**"


def test_the_finish_reason_is_said_once_when_a_finished_completion_is_stepped():
    notice = "the completion has finished (stop sequence): nothing was appended"
    line = render.status_line(RESULT | {"notice": notice}, Session(), notice)
    assert line.count("stop sequence") == 1 and "*nothing was appended*" in line


def test_the_model_line_says_loading_or_where_the_model_runs():
    assert "Loading" in render.model_markdown({"state": "loading", "model_id": "m"})
    ready = {"state": "ready", "model_id": "m", "source": "s", "device": "cpu", "dtype": "float32",
             "has_chat_template": True, "vocab_size": 10, "context_length": 20, "error": "old failure"}  # fmt: skip
    line = render.model_markdown(ready)
    assert "`m`" in line and "chat template" in line and "Error" not in line


def test_each_kind_of_chosen_token_has_its_own_mark_and_underline_on_the_pill_and_the_legend():
    css = render.pill_css()
    marks = {mark for mark, _ in render.PILL_MARKS.values()}
    lines = {line for _, line in render.PILL_MARKS.values()}
    assert len(marks) == len(lines) == len(render.PILL_MARKS) == 3
    for how, (mark, line) in render.PILL_MARKS.items():
        colour = render.COLOR_MAP[how].lstrip("#")
        rgb = ", ".join(str(int(colour[i : i + 2], 16)) for i in (0, 2, 4))  # how Gradio writes the pill's colour
        assert f'#tokens .token[style*="rgba({rgb},"]::after' in css and f'content: " {mark}"' in css
        assert f'#tokens .legend-item[style*="rgba({rgb},"]' in css and f"2px {line}" in css
    assert len({render.COLOR_MAP[how] for how in render.PILL_MARKS}) == 3


def test_a_conversation_reads_as_its_turns():
    turns = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"})
    assert render.conversation(turns) == "User: Hi\n\nAssistant: Hello"

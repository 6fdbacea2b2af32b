"""The branch comparison table, rendered from a comparison in the service's shape (no model)."""

from __future__ import annotations

import math
import re

import pytest

from ui.draw import compare


def _pill(text: str) -> dict:
    return {"id": hash(text) % 1000, "text": text, "display": text, "special": False}


def _step(index, token, other, kl_base, kl_final, reason=None, entropies=(1.5, 1.25)) -> dict:
    return {
        "index": index,
        "token": _pill(token) if token else None,
        "other_token": _pill(other) if other else None,
        "entropy_bits": entropies[0] if token else None,
        "other_entropy_bits": entropies[1] if other else None,
        "kl_base_bits": kl_base,
        "kl_final_bits": kl_final,
        "kl_final_reason": reason,
    }


COMPARISON = {
    "divergence_index": 1,
    "shared_prefix": 1,
    "steps": [
        _step(0, "a", "a", 0.0, 0.0),
        _step(1, "b", "c", 0.0, 0.0),  # same context before step 2: KL 0 even though the tokens differ
        _step(2, "d", "e", 3.2e-5, None, "infinite: the other branch's p_final is 0 on 3 token(s)"),
        _step(3, "f", None, None, None, "the other branch ends before this step"),
    ],
}


def _cells(html: str) -> list[list[str]]:
    """The header and the step rows (not the rows that explain a step), cell by cell."""
    rows = re.findall(r"<tr(?![^>]*kl-why)[^>]*>(.*?)</tr>", html)
    return [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)] for row in rows]


def test_one_row_per_step_with_the_divergence_marked():
    html = compare.comparison_html(COMPARISON, "alt", "main")
    cells = _cells(html)
    assert cells[0] == ["step", "alt", "entropy", "main", "entropy", "KL p_base", "KL p_final"]
    assert [row[0] for row in cells[1:]] == ["1", "2 ◀ diverge", "3", "4"]
    assert len(re.findall(r'class="diverge"', html)) == 1
    assert "Shared prefix: <b>1</b> token(s); they diverge at step <b>2</b>" in html
    assert "Comparing <b>alt</b> (current) with <b>main</b>" in html and "full vocabulary" in html


def test_small_kl_keeps_its_digits_and_missing_values_say_why():
    cells = _cells(compare.comparison_html(COMPARISON, "alt", "main"))
    kl_base, kl_final = cells[3][5], cells[3][6]
    assert float(kl_base) == pytest.approx(3.2e-5, rel=1e-3) and kl_base != "0.000"
    assert kl_final == "∞"
    html = compare.comparison_html(COMPARISON, "alt", "main")
    assert "ends before this step" in html  # in the cell's title: the empty cells show it
    assert cells[4][3:6] == ["", "", ""]  # the other branch has no step 4


def test_an_infinite_kl_is_explained_on_its_own_row_under_its_step():
    html = compare.comparison_html(COMPARISON, "alt", "main")
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html)
    why = re.findall(r'<tr class="kl-why"[^>]*><td colspan="7">(.*?)</td></tr>', html)
    assert why == ["Step 3, KL p_final: infinite: the other branch&#x27;s p_final is 0 on 3 token(s)"]
    assert "Step 3, KL p_final" in rows[4] and rows[3].startswith("<td>3</td>")  # right under step 3
    assert "<p>— KL p_final" not in html  # no notes under the table
    unchosen = {**COMPARISON["steps"][2], "token": None}  # the current branch ends at this step's context
    assert "kl-why" in compare.comparison_html({**COMPARISON, "steps": [unchosen]}, "alt", "main")


@pytest.mark.parametrize("value", [0.0, 1e-9, 2.5e-4, 0.012345, 1.0, 17.25, math.inf])
def test_bits_round_trip_to_four_significant_digits(value):
    text = compare.bits(value)
    assert float(text.replace("∞", "inf")) == pytest.approx(value, rel=5e-4)


def test_identical_branches_have_no_divergence_row():
    same = {"divergence_index": None, "shared_prefix": 1, "steps": [_step(0, "a", "a", 0.0, 0.0)]}
    html = compare.comparison_html(same, "main", "copy")
    assert "diverge" not in _cells(html)[1][0] and "the branches are the same" in html


def test_names_and_tokens_are_escaped():
    steps = [_step(0, "<i>", "x", 0.5, 0.5)]
    html = compare.comparison_html({"divergence_index": 0, "shared_prefix": 0, "steps": steps}, "<b>", "o")
    assert "&lt;i&gt;" in html and "&lt;b&gt;" in html and "<i>" not in html


def test_the_table_shows_the_exact_kl_of_two_real_branches(embedded):
    """Rendered from a real comparison; every KL cell equals an independent full-vocabulary computation."""
    import torch

    from backends.prefix_cache import PrefixCache
    from decoding.engine import Engine
    from service.compare import compare_branches

    engine = Engine(embedded, PrefixCache())
    prompt = "My favourite animal is the"
    encode = embedded.tokenizer
    current, other = (encode(text, add_special_tokens=False)["input_ids"] for text in (" cat, for sure", " dog"))
    req = engine.request({"prompt": prompt, "use_chat_template": False, "completion_ids": current})
    html = compare.comparison_html(compare_branches(engine, req, other).as_dict(), "cat", "dog")

    def log_p(completion: list[int]) -> torch.Tensor:
        with torch.no_grad():
            logits = embedded.model(torch.tensor([encode(prompt)["input_ids"] + completion])).logits[0, -1]
        return torch.log_softmax(logits.double(), -1)

    rows = _cells(html)[1:]
    assert len(rows) == max(len(current), len(other)) and rows[1][0] == "2" and "diverge" in rows[0][0]
    for i, row in enumerate(rows[: len(other) + 1]):  # the steps both branches have a context for
        p, q = log_p(current[:i]), log_p(other[:i])
        expected = float((p.exp() * (p - q)).sum()) / math.log(2)
        shown = float(row[5])
        assert shown == pytest.approx(expected, rel=2e-3, abs=1e-9), (i, row)
        assert (shown > 0) == (i > 0)  # different contexts from step 2 on: never shown as 0
    assert all(row[5] == "" for row in rows[len(other) + 1 :])


def test_bits_are_plain_decimals_in_every_row():
    assert [compare.bits(v) for v in (3.2e-5, 0.5, 17.25, 0.0)] == ["0.00003200", "0.5000", "17.25", "0"]


def test_with_a_reference_each_branch_shows_its_kl_and_agreement_or_why_not():
    sides = [
        ({"kl_base_bits": 0.00125, "top_agrees": True, "reason": None},
         {"kl_base_bits": 0.5, "top_agrees": False, "reason": None}),
        ({"kl_base_bits": 0.0, "top_agrees": True, "reason": None},
         {"kl_base_bits": None, "top_agrees": None, "reason": "the other branch ends before this step"}),
    ]  # fmt: skip
    steps = [_step(0, "a", "b", 0.0, 0.0) | {"reference": a, "other_reference": b} for a, b in sides]
    table = compare.comparison_html(
        {"divergence_index": 0, "shared_prefix": 0, "steps": steps, "reference": "int8"}, "m", "o"
    )
    assert "Against the reference (int8)" in table and "<th>m vs reference</th><th>o vs reference</th>" in table
    cells = re.findall(r'<td class="vs-reference">(.*?)</td>', table)
    assert cells == [
        "0.001250 · top agrees", "0.5000 · top differs", "0 · top agrees",
        '<span title="the other branch ends before this step">—</span>',
    ]  # fmt: skip
    assert "vs reference" not in compare.comparison_html(COMPARISON, "m", "o")

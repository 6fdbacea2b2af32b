"""Two branches side by side: tokens per step, the divergence point, entropies and KL divergence.

`comparison_html` renders the service's comparison of two branches (exact KL over the full vocabulary,
computed by the engine); this module only formats it and runs no model. A KL with no finite value is
explained on its own row under its step (an infinite one names the tokens the other branch gives
p_final 0), not in notes under the table that name no step. With a reference model on, two more columns show
each branch against the reference at each step: KL(main ‖ reference) of p_base and whether the top tokens agree.
"""

from __future__ import annotations

import html
import math

INFINITE = "infinite"  # how the service's reason for an infinite KL begins
COMPARE_NOTE = (
    "KL(current ‖ other) in bits, summed over the full vocabulary, between the two branches' next-token "
    "distributions before each step: p_base (the raw model) and p_final (after this view's knobs). "
    "Entropies are of p_base. Both are 0 while the contexts are the same."
)
REFERENCE_KEYS = ("reference", "other_reference")  # each branch against the reference, where one is on
REFERENCE_NOTE = (
    "Against the reference ({name}): on each branch, KL(main ‖ reference) of p_base in bits before each step, "
    "and whether both models' p_final have the same top token."
)


def comparison_html(comparison: dict, current_name: str, other_name: str) -> str:
    """An HTML table of a service comparison, one row per step; the first differing step is marked."""
    steps, split = comparison["steps"], comparison["divergence_index"]
    where = "the branches are the same" if split is None else f"they diverge at step <b>{split + 1}</b>"
    reference = comparison.get("reference")
    names = [html.escape(current_name), html.escape(other_name)]
    notes = f"<p>{COMPARE_NOTE}</p>"
    extra = ""
    if reference is not None:
        notes += f"<p>{REFERENCE_NOTE.format(name=html.escape(reference))}</p>"
        extra = "".join(f"<th>{name} vs reference</th>" for name in names)
    head = (
        f"<p>Comparing <b>{names[0]}</b> (current) with <b>{names[1]}</b>. "
        f"Shared prefix: <b>{comparison['shared_prefix']}</b> token(s); {where}.</p>{notes}"
        f"<table><tr><th>step</th><th>{names[0]}</th><th>entropy</th>"
        f"<th>{names[1]}</th><th>entropy</th><th>KL p_base</th><th>KL p_final</th>{extra}</tr>"
    )
    rows = "".join(_step_row(step, step["index"] == split) + _reason_row(step, reference) for step in steps)
    return head + rows + "</table>"


def _step_row(step: dict, diverges: bool) -> str:
    style = ' class="diverge" style="background:#fef3c7"' if diverges else ""
    reason = step["kl_final_reason"]
    final = f'<span title="{html.escape(reason)}">{_no_value(reason)}</span>' if reason else bits(step["kl_final_bits"])
    sides = "".join(f'<td class="vs-reference">{_vs(step[k])}</td>' for k in REFERENCE_KEYS if k in step)
    return (
        f"<tr{style}><td>{step['index'] + 1}{' ◀ diverge' if diverges else ''}</td>"
        f"<td>{_pill(step['token'])}</td><td>{bits(step['entropy_bits'])}</td>"
        f"<td>{_pill(step['other_token'])}</td><td>{bits(step['other_entropy_bits'])}</td>"
        f"<td>{bits(step['kl_base_bits'])}</td><td>{final}</td>{sides}</tr>"
    )


def _vs(side: dict) -> str:
    """A branch against the reference at a step: its KL and whether the top tokens agree; "—" where it has none."""
    if side["reason"] is not None:
        return f'<span title="{html.escape(side["reason"])}">—</span>'
    return f"{bits(side['kl_base_bits'])} · top {'agrees' if side['top_agrees'] else 'differs'}"


def _no_value(reason: str) -> str:
    return "∞" if reason.startswith(INFINITE) else "—"


def _reason_row(step: dict, reference: str | None) -> str:
    """Under a step whose p_final KL has no value (both branches reach it): why, on a row of its own."""
    reason = step["kl_final_reason"]
    if not reason or step["entropy_bits"] is None or step["other_entropy_bits"] is None:
        return ""  # a branch that ends before the step shows as empty cells: nothing more to say
    return (
        f'<tr class="kl-why" style="font-size:0.9em;color:#92400e"><td colspan="{7 if reference is None else 9}">'
        f"Step {step['index'] + 1}, KL p_final: {html.escape(reason)}</td></tr>"
    )


def bits(value: float | None) -> str:
    """Four significant digits as a plain decimal (never "3.2e-05" beside "1.234": one format per column), so a
    small but real divergence never reads 0; exact 0 is "0"."""
    if value is None:
        return ""
    if math.isinf(value):
        return "∞"
    if value == 0:
        return "0"
    return f"{value:.{max(0, 3 - math.floor(math.log10(abs(value))))}f}"


def _pill(token: dict | None) -> str:
    return f"<code>{html.escape(token['display'])}</code>" if token else ""

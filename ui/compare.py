"""Two branches side by side: tokens per step, the divergence point, entropies and KL divergence.

`comparison_html` renders the service's comparison of two branches (exact KL over the full vocabulary,
computed by the engine); this module only formats it and runs no model.
"""

from __future__ import annotations

import html
import math

from decoding.cache import common_prefix

from . import session


def kl_bits(p_dist: dict | None, q_dist: dict | None) -> float | None:
    """KL(p || q) in bits over the shown candidates of both, the rest as one bucket, on p_base."""
    if not p_dist or not q_dist:
        return None
    p = {r["id"]: r["p_base"] for r in p_dist["tokens"]}
    q = {r["id"]: r["p_base"] for r in q_dist["tokens"]}
    ids = set(p) | set(q)
    p_rest, q_rest = max(1e-12, 1 - sum(p.get(i, 0) for i in ids)), max(1e-12, 1 - sum(q.get(i, 0) for i in ids))
    total = p_rest * math.log2(p_rest / q_rest)
    for i in ids:
        pi = p.get(i, 0.0)
        if pi > 0:
            total += pi * math.log2(pi / max(q.get(i, q_rest), 1e-12))
    return max(0.0, total)


def compare_html(state: dict, other: str) -> str:
    """An HTML table of both branches, one row per step; the first differing step is highlighted."""
    if other not in state["branches"]:
        raise ValueError(f"branch {other!r} does not exist (it may have been deleted)")
    a, b = session.current(state), state["branches"][other]
    split = common_prefix(a["ids"], b["ids"])
    rows = []
    for i in range(max(len(a["ids"]), len(b["ids"]))):
        ma, mb = _meta(a, i), _meta(b, i)
        kl = kl_bits(ma.get("dist"), mb.get("dist")) if ma and mb else None
        style = ' style="background:#fef3c7"' if i == split else ""
        rows.append(
            f"<tr{style}><td>{i + 1}{' ◀ diverge' if i == split else ''}</td>"
            f"<td>{_token(ma)}</td><td>{_entropy(ma)}</td><td>{_token(mb)}</td><td>{_entropy(mb)}</td>"
            f"<td>{'' if kl is None else f'{kl:.3f}'}</td></tr>"
        )
    head = (
        f"<p>Shared prefix: <b>{split}</b> token(s). KL(current ‖ other) of the model's next-token distributions "
        "(p_base, over the shown candidates, the rest as one bucket): 0 while the contexts are the same.</p>"
        f"<table><tr><th>step</th><th>{html.escape(a['name'])}</th><th>entropy</th>"
        f"<th>{html.escape(b['name'])}</th><th>entropy</th><th>KL bits</th></tr>"
    )
    return head + "".join(rows) + "</table>"


def _meta(branch: dict, i: int) -> dict:
    if i < len(branch["meta"]):
        return branch["meta"][i]
    if i < len(branch["ids"]):
        return {"token": {"display": f"#{branch['ids'][i]}"}}
    return {}


def _token(meta: dict) -> str:
    return f"<code>{html.escape(meta['token']['display'])}</code>" if meta else ""


def _entropy(meta: dict) -> str:
    dist = meta.get("dist") if meta else None
    return f"{abs(dist['entropy_final']):.2f}" if dist else ""


COMPARE_NOTE = (
    "KL(current ‖ other) in bits, summed over the full vocabulary, between the two branches' next-token "
    "distributions before each step: p_base (the raw model) and p_final (after this view's knobs). "
    "Entropies are of p_base. Both are 0 while the contexts are the same."
)


def comparison_html(comparison: dict, current_name: str, other_name: str) -> str:
    """An HTML table of a service comparison, one row per step; the first differing step is marked."""
    steps, split = comparison["steps"], comparison["divergence_index"]
    where = "the branches are the same" if split is None else f"they diverge at step <b>{split + 1}</b>"
    head = (
        f"<p>Comparing <b>{html.escape(current_name)}</b> (current) with <b>{html.escape(other_name)}</b>. "
        f"Shared prefix: <b>{comparison['shared_prefix']}</b> token(s); {where}.</p><p>{COMPARE_NOTE}</p>"
        f"<table><tr><th>step</th><th>{html.escape(current_name)}</th><th>entropy</th>"
        f"<th>{html.escape(other_name)}</th><th>entropy</th><th>KL p_base</th><th>KL p_final</th></tr>"
    )
    rows = "".join(_step_row(step, step["index"] == split) for step in steps)
    reasons = dict.fromkeys(s["kl_final_reason"] for s in steps if s["kl_final_reason"])
    notes = "".join(f"<p>— KL p_final: {html.escape(reason)}</p>" for reason in reasons)
    return head + rows + "</table>" + notes


def _step_row(step: dict, diverges: bool) -> str:
    style = ' class="diverge" style="background:#fef3c7"' if diverges else ""
    reason = step["kl_final_reason"]
    final = f'<span title="{html.escape(reason)}">—</span>' if reason else bits(step["kl_final_bits"])
    return (
        f"<tr{style}><td>{step['index'] + 1}{' ◀ diverge' if diverges else ''}</td>"
        f"<td>{_pill(step['token'])}</td><td>{bits(step['entropy_bits'])}</td>"
        f"<td>{_pill(step['other_token'])}</td><td>{bits(step['other_entropy_bits'])}</td>"
        f"<td>{bits(step['kl_base_bits'])}</td><td>{final}</td></tr>"
    )


def bits(value: float | None) -> str:
    """Four significant digits, so a small but real divergence never reads 0; exact 0 is "0"."""
    if value is None:
        return ""
    return "∞" if math.isinf(value) else f"{value:.4g}"


def _pill(token: dict | None) -> str:
    return f"<code>{html.escape(token['display'])}</code>" if token else ""

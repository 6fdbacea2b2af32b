"""Two branches side by side: tokens per step, the divergence point, entropies and KL divergence."""

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

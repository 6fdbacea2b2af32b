"""The attribution panel: context tokens as a heatmap for one target token.

Hovering a completion token or a candidate in the panel asks the server (a `gr.HTML` server
function) for that target's attribution and colours the context; the Explain button does the same
through a queued event with progress and cancel, for the slow methods.
"""

from __future__ import annotations

import html
import json
import logging

from decoding import service

log = logging.getLogger(__name__)
METHOD_CHOICES = [
    ("Attention (fast)", "attention"),
    ("Saliency (gradient)", "saliency"),
    ("Input x gradient", "input_x_gradient"),
    ("Integrated gradients (slow)", "integrated_gradients"),
]
HOVER_METHODS = ("attention", "saliency", "input_x_gradient")
PANEL_CSS = """
.attr-tokens { font-family: ui-monospace, monospace; line-height: 2; }
.attr-tokens span, .attr-cands span { padding: 2px 3px; margin: 1px; border-radius: 4px; display: inline-block; }
.attr-tokens .comp { border-bottom: 2px solid #2563eb; cursor: help; }
.attr-tokens .target { outline: 2px solid #f97316; }
.attr-cands span { border: 1px solid #9ca3af; cursor: help; font-family: ui-monospace, monospace; }
.attr-legend { font-size: 0.9em; margin-bottom: 6px; }
"""
PANEL_JS = """
let latest = 0;
function paint(root, scores, targetPos) {
  const spans = root.querySelectorAll('.attr-tokens span');
  const peak = Math.max(1e-12, ...scores.map(Math.abs));
  spans.forEach((span, i) => {
    span.classList.toggle('target', i === targetPos);
    if (i >= scores.length) { span.style.background = ''; span.style.opacity = i === targetPos ? 1 : 0.35; return; }
    const a = Math.abs(scores[i]) / peak;
    const rgb = scores[i] >= 0 ? '37,99,235' : '220,38,38';
    span.style.background = `rgba(${rgb},${(0.08 + 0.8 * a).toFixed(3)})`;
    span.style.opacity = 1;
    span.title = `score ${scores[i].toFixed(4)}`;
  });
}
element.addEventListener('mouseover', async (event) => {
  const hit = event.target.closest('[data-ci],[data-cand]');
  const root = element.querySelector('.attr');
  if (!hit || !root) return;
  const legend = root.querySelector('.attr-legend');
  if (!root.dataset.hover) { legend.textContent = root.dataset.slow; return; }
  const call = ++latest;
  legend.textContent = 'computing…';
  const index = hit.dataset.ci === undefined ? null : Number(hit.dataset.ci);
  const cand = hit.dataset.cand === undefined ? null : Number(hit.dataset.cand);
  const out = await server.explain(root.dataset.request, index, cand, root.dataset.method);
  if (call !== latest) return;
  if (!out || out.error) { legend.textContent = out ? out.error : 'attribution failed'; return; }
  paint(root, out.scores, index === null ? -1 : Number(root.dataset.plen) + index);
  legend.textContent = out.legend;
});
"""


def explain(args: list) -> dict:
    """Server function behind hovering: normalised scores and a legend line, or a readable error.

    Gradio passes the page's call arguments as one list: (request JSON, completion index or null,
    candidate id or null, method).
    """
    try:
        request_json, target_index, target_token_id, method = args
        request = json.loads(request_json) | {"method": method}
        request |= {"target_index": target_index} if target_index is not None else {"target_token_id": target_token_id}
        result = service.attribution(request)
    except ValueError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a hover must never break the page: report, log, carry on
        log.exception("attribution failed")
        return {"error": f"attribution failed ({type(exc).__name__}): {exc}"}
    return {"scores": list(result["normalized"]), "legend": legend(result)}


def legend(result: dict) -> str:
    """What the colours mean: method, aggregation, target, time, and the IG completeness error."""
    parts = [f"{result['method'].replace('_', ' ')} for {result['target']['display']!s}: {result['aggregation']}"]
    parts.append(
        "blue = pushes towards the target, red = against"
        if "sum" in result["aggregation"].lower()
        else "darker = more influence"
    )
    parts.append(f"{result['elapsed_s']:.2f} s")
    if result.get("completeness_error") is not None:
        parts.append(f"completeness error {result['completeness_error']:.3g} (steps {result['steps']})")
    if result.get("fell_back_to_cpu"):
        parts.append("computed on the CPU (the device gave no attention weights)")
    return " · ".join(parts)


def panel_html(request: dict, result: dict, method: str) -> str:
    """Context tokens (completion tokens hoverable) and the current candidates, with the request embedded."""
    plen = len(result["prompt_tokens"])
    spans = [f'<span data-pos="{i}">{html.escape(t["display"])}</span>' for i, t in enumerate(result["prompt_tokens"])]
    spans += [
        f'<span class="comp" data-pos="{plen + i}" data-ci="{i}">{html.escape(t["display"])}</span>'
        for i, t in enumerate(result["completion_tokens"])
    ]
    rows = (result.get("dist") or {}).get("tokens", [])
    cands = "".join(f'<span data-cand="{r["id"]}">{html.escape(r["display"])}</span>' for r in rows)
    hover = "1" if method in HOVER_METHODS else ""
    slow = "Integrated gradients is slow: use the Explain button (with progress and cancel)."
    intro = "Hover a completion token (underlined) or a candidate to see which context tokens it depends on."
    return (
        f'<div class="attr" data-request="{html.escape(json.dumps(request))}" data-method="{method}" '
        f'data-plen="{plen}" data-hover="{hover}" data-slow="{slow}">'
        f'<div class="attr-legend">{intro if hover else slow}</div>'
        f'<div class="attr-tokens">{"".join(spans)}</div>'
        f'<div class="attr-cands">Candidates: {cands or "(none)"}</div></div>'
    )


def heatmap_spans(result: dict) -> list[tuple[str, float | None]]:
    """(display, score) pairs for a HighlightedText heatmap, scaled so the strongest token is ±1; target last."""
    peak = max((abs(s) for s in result["normalized"]), default=0.0) or 1.0
    pairs = [
        (t["display"], round(s / peak, 4)) for t, s in zip(result["context_tokens"], result["normalized"], strict=True)
    ]
    return [*pairs, (f"→ {result['target']['display']}", None)]

"""The attribution panels: context tokens coloured by how much a target token depends on them.

Hovering a completion token or a candidate in the hover panel asks the server (a `gr.HTML` server
function) for that target's attribution; the Explain button does the same through a queued event with
progress and cancel, for the slow methods. Both panels colour tokens with `cell_style`, the one colour
scale of this module, chosen by the result's `signed`: unsigned scores (attention, L2 norms) in one
hue, darker = more; signed scores blue for the target, red against it. The server computes the styles
for both panels, so the page's script only applies them and the two cannot disagree.
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
UNSIGNED_RGB = "124, 58, 237"  # violet: magnitude only, no direction
FOR_RGB = "37, 99, 235"  # blue: raises the target's probability
AGAINST_RGB = "220, 38, 38"  # red: lowers it
UNSIGNED_WORDS = "darker violet = more influence (these scores are never negative)"
SIGNED_WORDS = "blue = pushes towards the target, red = pushes against it; darker = stronger"
TOKEN_STYLE = "padding:2px 3px;margin:1px;border-radius:4px;display:inline-block;white-space:pre"
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
function paint(root, styles, titles, targetPos) {
  root.querySelectorAll('.attr-tokens span').forEach((span, i) => {
    span.classList.toggle('target', i === targetPos);
    span.style.cssText = i < styles.length ? styles[i] : (i === targetPos ? '' : 'opacity:0.35');
    span.title = i < titles.length ? titles[i] : '';
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
  paint(root, out.styles, out.titles, index === null ? -1 : Number(root.dataset.plen) + index);
  legend.innerHTML = out.legend_html;
});
"""


def cell_style(score: float, peak: float, signed: bool) -> str:
    """Inline CSS of one context token: the hue by sign (signed scores only), the depth by |score| / peak."""
    depth = min(1.0, abs(score) / peak) if peak > 0 else 0.0
    rgb = (FOR_RGB if score >= 0 else AGAINST_RGB) if signed else UNSIGNED_RGB
    ink = "color:#fff;" if depth > 0.55 else ""  # dark text stays readable on the lighter cells only
    return f"background:rgba({rgb}, {0.08 + 0.8 * depth:.3f});{ink}"


def token_styles(result: dict) -> list[str]:
    """One inline style per context token, scaled so the strongest token is the darkest."""
    scores, signed = result["normalized"], result["signed"]
    peak = max((abs(s) for s in scores), default=0.0)
    return [cell_style(s, peak, signed) for s in scores]


def scale_words(result: dict) -> str:
    return SIGNED_WORDS if result["signed"] else UNSIGNED_WORDS


def swatches(signed: bool) -> str:
    """A small key drawn with `cell_style` itself: weak to strong, per hue in use."""
    ends = (-1.0, -0.5, 0.5, 1.0) if signed else (0.25, 0.5, 1.0)
    return "".join(f'<span style="{TOKEN_STYLE};{cell_style(s, 1.0, signed)}">&nbsp;&nbsp;</span>' for s in ends)


def legend(result: dict) -> str:
    """What the colours mean: method, aggregation, target, the scale in words, time, IG completeness error."""
    parts = [f"{result['method'].replace('_', ' ')} for {result['target']['display']!s}: {result['aggregation']}"]
    parts.append(f"colour: {scale_words(result)}")
    parts.append(f"{result['elapsed_s']:.2f} s")
    if result.get("completeness_error") is not None:
        parts.append(f"completeness error {result['completeness_error']:.3g} (steps {result['steps']})")
    if result.get("fell_back_to_cpu"):
        parts.append("computed on the CPU (the device gave no attention weights)")
    return " · ".join(parts)


def legend_html(result: dict) -> str:
    return f'{swatches(result["signed"])} <span class="attr-legend-text">{html.escape(legend(result))}</span>'


def explain(args: list) -> dict:
    """Server function behind hovering: one style and title per context token and the legend, or an error.

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
    titles = [f"score {s:.4f}" for s in result["normalized"]]
    return {"styles": token_styles(result), "titles": titles, "legend_html": legend_html(result)}


def panel_html(request: dict, result: dict, method: str, aggregation: str = "l2") -> str:
    """Context tokens (completion tokens hoverable) and the current candidates, with the request embedded.

    The embedded request carries `aggregation`, so hovering uses the same one as the Explain button.
    """
    request = request | {"aggregation": aggregation}
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


def explain_html(result: dict) -> str:
    """The Explain panel: the context coloured on the hover panel's scale, then the target, under its legend."""
    cells = [
        f'<span class="attr-cell" style="{TOKEN_STYLE};{style}" title="score {score:.4f}">{html.escape(token)}</span>'
        for token, score, style in zip(
            (t["display"] for t in result["context_tokens"]), result["normalized"], token_styles(result), strict=True
        )
    ]
    target = html.escape(f"→ {result['target']['display']}")
    cells.append(f'<span class="attr-target" style="{TOKEN_STYLE};outline:2px solid #f97316">{target}</span>')
    return (
        f'<div class="attr-explain"><div class="attr-legend">{legend_html(result)}</div>'
        f'<div style="font-family:ui-monospace,monospace;line-height:2">{"".join(cells)}</div></div>'
    )

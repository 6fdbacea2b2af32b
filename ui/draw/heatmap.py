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

from service import operations as service
from service.public import ATTRIBUTION_METHODS

from ..assets import asset
from ..wording import on_screen

log = logging.getLogger(__name__)
# the registry's token-scoring methods, in its order (direct logit attribution scores model parts: API only)
METHOD_CHOICES = [(m.label, m.name) for m in ATTRIBUTION_METHODS if m.token_scores]
HOVER_METHODS = tuple(m.name for m in ATTRIBUTION_METHODS if m.hover)  # quick enough for every hover
UNSIGNED_RGB = "124, 58, 237"  # violet: magnitude only, no direction
FOR_RGB = "37, 99, 235"  # blue: raises the target's probability
AGAINST_RGB = "220, 38, 38"  # red: lowers it
UNSIGNED_WORDS = "darker violet = more influence (these scores are never negative)"
SIGNED_WORDS = "blue = pushes towards the target, red = pushes against it; darker = stronger"
TOKEN_STYLE = "padding:2px 3px;margin:1px;border-radius:4px;display:inline-block;white-space:pre"
PANEL_CSS = asset("attribution_hover.css")
PANEL_JS = asset("attribution_hover.js")  # asks `explain` for a target's styles on hover


def cell_style(score: float, peak: float, signed: bool) -> str:
    """Inline CSS of one context token: the hue by sign (signed scores only), the depth by |score| / peak."""
    depth = min(1.0, abs(score) / peak) if peak > 0 else 0.0
    rgb = (FOR_RGB if score >= 0 else AGAINST_RGB) if signed else UNSIGNED_RGB
    ink = "color:#fff;" if depth > 0.55 else ""  # dark text stays readable on the lighter cells only
    return f"background:rgba({rgb}, {0.08 + 0.8 * depth:.3f});{ink}"


def token_scores(result: dict) -> list[float]:
    """The display score of each context token: its own, or (per word) its word's."""
    if not result.get("words"):
        return list(result["normalized"])
    scores = [0.0] * len(result["normalized"])
    for word in result["words"]:
        scores[word["start"] : word["end"]] = [word["normalized"]] * (word["end"] - word["start"])
    return scores


def token_styles(result: dict) -> list[str]:
    """One inline style per context token, scaled so the strongest token (or word) is the darkest."""
    scores, signed = token_scores(result), result["signed"]
    peak = max((abs(s) for s in scores), default=0.0)
    return [cell_style(s, peak, signed) for s in scores]


def scale_words(result: dict) -> str:
    return SIGNED_WORDS if result["signed"] else UNSIGNED_WORDS


def swatches(signed: bool) -> str:
    """A small key drawn with `cell_style` itself: weak to strong, per hue in use."""
    ends = (-1.0, -0.5, 0.5, 1.0) if signed else (0.25, 0.5, 1.0)
    return "".join(f'<span style="{TOKEN_STYLE};{cell_style(s, 1.0, signed)}">&nbsp;&nbsp;</span>' for s in ends)


def legend(result: dict) -> str:
    """What the colours mean: method, aggregation, target (and foil), the scale in words, time, IG error."""
    foil = f" rather than {result['contrast']['display']}" if result.get("contrast") else ""
    per_word = " (summed per word)" if result.get("words") else ""
    target = f"{result['target']['display']!s}{foil}"
    parts = [f"{result['method'].replace('_', ' ')} for {target}: {result['aggregation']}{per_word}"]
    parts.append(f"colour: {scale_words(result)}")
    parts.append(f"{result['elapsed_s']:.2f} s")
    if result.get("completeness_error") is not None:
        parts.append(f"completeness error {result['completeness_error']:.3g} (steps {result['steps']})")
    if result.get("fell_back_to_cpu"):
        parts.append("computed on the CPU (the device gave no attention weights)")
    return " · ".join(parts)


def faithfulness_line(result: dict) -> str:
    """Do the top-scored tokens matter more than random ones? The deletion test's numbers, and a plain reading."""
    numbers = result.get("faithfulness")
    if not numbers:
        return ""
    drop, chance = numbers["comprehensiveness"], numbers["random_baseline"]
    what = "log-prob difference" if result.get("contrast") else "log-prob"
    reading = "better than chance" if drop > chance else "no better than chance"
    return (
        f"Faithfulness: top 20 % of tokens ({numbers['k']}) removed: {what} drops {drop:.2f}; "
        f"random tokens: {chance:.2f} → {reading}"
    )


def heading(result: dict) -> str:
    """Which question the result answers: the completion position and its token (and the foil), in words."""
    foil = f" rather than {result['contrast']['display']}" if result.get("contrast") else ""
    return f"Token {result['target_index'] + 1} of the completion: {result['target']['display']}{foil}"


def legend_html(result: dict) -> str:
    """The heading, then the colour key and the legend, then the faithfulness line."""
    text = f'{swatches(result["signed"])} <span class="attr-legend-text">{html.escape(legend(result))}</span>'
    faith = faithfulness_line(result)
    head = f'<div class="attr-heading" style="font-weight:600">{html.escape(heading(result))}</div>'
    return head + text + (f'<div class="attr-faith">{html.escape(faith)}</div>' if faith else "")


def explain(args: list) -> dict:
    """Server function behind hovering: one style and title per context token and the legend, or an error.

    Gradio passes the page's call arguments as one list: (request JSON, completion index or null,
    candidate id or null, method).
    """
    try:
        request_json, target_index, target_token_id, method = args
        request = json.loads(request_json) | {"method": method}
        request |= {"target_index": target_index, "target_token_id": target_token_id}
        result = service.attribution(request)
    except ValueError as exc:
        return {"error": on_screen(str(exc))}
    except Exception as exc:  # a hover must never break the page: report, log, carry on
        log.exception("attribution failed")
        return {"error": f"attribution failed ({type(exc).__name__}): {exc}"}
    titles = [f"score {s:.4f}" for s in token_scores(result)]
    return {"styles": token_styles(result), "titles": titles, "legend_html": legend_html(result)}


def panel_html(
    request: dict, result: dict, method: str, candidates: list[dict] | None = None, at: int | None = None
) -> str:
    """Context tokens (completion tokens hoverable) and the candidates, with the request embedded.

    The embedded request carries the aggregation and granularity, so hovering uses the Explain button's.
    `candidates` are those of the inspected completion token `at` (hovering one explains it there), else
    of the next token (default: the result's). The legend comes last: it grows when a result arrives,
    and nothing under the pointer may move then (a moved token would be hovered in its place).
    """
    plen = len(result["prompt_tokens"])
    spans = [f'<span data-pos="{i}">{html.escape(t["display"])}</span>' for i, t in enumerate(result["prompt_tokens"])]
    spans += [
        f'<span class="comp" data-pos="{plen + i}" data-ci="{i}">{html.escape(t["display"])}</span>'
        for i, t in enumerate(result["completion_tokens"])
    ]
    rows = (result.get("dist") or {}).get("tokens", []) if candidates is None else candidates
    cands = "".join(f'<span data-cand="{r["id"]}">{html.escape(r["display"])}</span>' for r in rows)
    where = "Candidates" if at is None else f"Candidates at token {at + 1}"
    hover = "1" if method in HOVER_METHODS else ""
    slow = f"{dict((v, k) for k, v in METHOD_CHOICES).get(method, method)}: use the Explain button (progress, cancel)."
    intro = "Hover a completion token (underlined) or a candidate to see which context tokens it depends on."
    return (
        f'<div class="attr" data-request="{html.escape(json.dumps(request))}" data-method="{method}" '
        f'data-plen="{plen}" data-hover="{hover}" data-slow="{html.escape(slow)}" data-at="{"" if at is None else at}">'
        f'<div class="attr-tokens">{"".join(spans)}</div>'
        f'<div class="attr-cands">{where}: {cands or "(none)"}</div>'
        f'<div class="attr-legend">{intro if hover else html.escape(slow)}</div></div>'
    )


def explain_html(result: dict) -> str:
    """The Explain panel: the context (tokens, or words) on the hover scale, then the target, under its legend."""
    words = result.get("words")
    units = [(w["text"], w["normalized"]) for w in words] if words else [
        (t["display"], s) for t, s in zip(result["context_tokens"], result["normalized"], strict=True)
    ]  # fmt: skip
    peak = max((abs(score) for _, score in units), default=0.0)
    kind = "attr-cell attr-word" if words else "attr-cell"
    cells = [
        f'<span class="{kind}" style="{TOKEN_STYLE};{cell_style(score, peak, result["signed"])}" '
        f'title="score {score:.4f}">{html.escape(text)}</span>'
        for text, score in units
    ]
    target = html.escape(f"→ {result['target']['display']}")
    cells.append(f'<span class="attr-target" style="{TOKEN_STYLE};outline:2px solid #f97316">{target}</span>')
    return (
        f'<div class="attr-explain"><div class="attr-legend">{legend_html(result)}</div>'
        f'<div style="font-family:ui-monospace,monospace;line-height:2">{"".join(cells)}</div></div>'
    )

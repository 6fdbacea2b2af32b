"""Turn service results into what the explorer's components show: token spans, table rows, status lines."""

from __future__ import annotations

from ..state import Session
from . import plots

COLOR_MAP = {
    "prompt": "#e5e7eb",
    "special": "#c4b5fd",
    "greedy": "#bbf7d0",
    "sampled": "#93c5fd",
    "forced": "#fdba74",
}
# How a chosen token differs beyond its colour: a mark after it and the style of its underline, on the pill
# and on its legend entry (colour alone does not tell them apart for everyone)
PILL_MARKS = {"greedy": ("▲", "solid"), "sampled": ("✱", "dotted"), "forced": ("✎", "dashed")}
CANDIDATE_HEADERS = ["token", "id", "p_base", "p_final", "status"]
DEFAULT_STAGES = ("base", "penalties", "temperature", "constraint", "top_p")
# How the engine begins its notice when a finished completion is stepped: the status line names the finish itself
FINISHED_NOTE = "the completion has finished ({reason}): "


def pill_css() -> str:
    """The token view's marks per kind of chosen token. Gradio colours a pill by an inline
    `background-color: rgba(r, g, b, …)`, so a pill (and its legend entry) is found by its colour."""
    rules = []
    for how, (mark, line) in PILL_MARKS.items():
        hex_colour = COLOR_MAP[how].lstrip("#")
        rgb = ", ".join(str(int(hex_colour[i : i + 2], 16)) for i in (0, 2, 4))
        pill, key = f'#tokens .token[style*="rgba({rgb},"]', f'#tokens .legend-item[style*="rgba({rgb},"]'
        rules.append(f'{pill}::after, {key}::after {{ content: " {mark}"; font-size: 0.7em; opacity: 0.8; }}')
        rules.append(f"{pill}, {key} {{ border-bottom: 2px {line} #334155; }}")
    return "\n".join(rules)


def shown_rows(dist: dict | None, chosen: int | None = None) -> tuple[plots.ShownRow, ...]:
    """The rows the view shows (the top-k before truncation, then those penalties pushed down), as the chart."""
    return plots.shown_rows(dist, chosen) if dist else ()


def token_spans(result: dict, meta: tuple[dict, ...]) -> list[tuple[str, str]]:
    """(display, label) pairs for the prompt and completion; the label says special / how chosen."""
    spans = [(t["display"], "special" if t["special"] else "prompt") for t in result["prompt_tokens"]]
    for i, token in enumerate(result["completion_tokens"]):
        how = meta[i]["how"] if i < len(meta) else "forced"
        label = "forced" if how.startswith("forced") else how
        spans.append((token["display"], "special" if token["special"] else label))
    return spans


def status_of(row: plots.ShownRow) -> str:
    """The row's marks, as the chart shows them, then kept or the stage that removed it (short: narrow screens)."""
    symbols = "".join(mark.symbol for mark in row.marks)
    state = row.removed_by.replace("_", "-") if row.removed_by else "kept"
    return f"{symbols} {state}".strip()


def candidate_rows(dist: dict | None, chosen: int | None = None) -> list[list]:
    """Token, id, p_base, p_final and status of every shown row; the token is its display text alone."""
    return [
        [r.token["display"], r.token["id"], f"{r.token['p_base']:.1%}", f"{r.token['p_final']:.1%}", status_of(r)]
        for r in shown_rows(dist, chosen)
    ]


def stage_names(dist: dict | None) -> tuple[str, ...]:
    names = (dist or {}).get("stages")
    return tuple(names) if isinstance(names, list | tuple) else DEFAULT_STAGES


def stage_headers(dist: dict | None) -> list[str]:
    """One column per active stage in the order applied, each with the tokens still in play after it."""
    counts = (dist or {}).get("stage_counts") or {}
    return ["token", *(_stage_title(name, counts.get(name)) for name in stage_names(dist))]


def _stage_title(stage: str, in_play: int | None) -> str:
    title = plots.stage_title(stage)
    return title if in_play is None else f"{title} ({in_play:,})"


def stage_rows(dist: dict | None) -> list[list]:
    """Probability of every shown candidate after each stage, in pipeline order; the removing stage says so."""
    names = stage_names(dist)
    return [[r.token["display"], *(_stage_cell(r, name) for name in names)] for r in shown_rows(dist)]


def _stage_cell(row: plots.ShownRow, stage: str) -> str:
    if stage == row.removed_by:
        mark = plots.removal_mark(stage)
        return f"{mark.symbol} {mark.note}"
    return _percent(row.token["stages"].get(stage))


def _percent(p: float | None) -> str:
    return "" if p is None else f"{p:.1%}"


def status_line(result: dict, session: Session, notice: str = "") -> str:
    """The always-visible line: tokens, branch, inspection, entropies, finish reason, notices."""
    n_prompt, n_done = len(result["prompt_tokens"]), len(result["completion_ids"])
    parts = [f"**{n_done}** completion {plural(n_done, 'token')} after a **{n_prompt}**-token prompt"]
    branch = session.branch
    kind = f" (a conversation of {len(branch.messages)} messages)" if branch.messages is not None else ""
    parts.append(f"{branch_named(branch.name)}{kind}")
    if session.inspect is not None:
        parts.append(f"inspecting token {session.inspect + 1}")
    dist = result.get("dist")
    if dist and session.inspect is None:
        parts.append(f"entropy {dist['entropy_base']:.2f} → {abs(dist['entropy_final']):.2f} bits")
        parts.append(f"{dist['kept_token_count']} in play")
    reason = (result.get("finish_reason") or "").replace("_", " ")
    if result["finished"]:
        parts.append(f"**finished: {reason}**")
    for text in dict.fromkeys((result.get("notice"), notice)):  # the same notice once
        if text:  # the finish reason is said once, just above
            parts.append(f"*{text.replace(FINISHED_NOTE.format(reason=reason), '')}*")
    return " · ".join(parts)


def plural(n: int, word: str) -> str:
    """`word` as it reads after the number `n`: "1 token", "2 tokens", "0 tokens"."""
    return word if n == 1 else f"{word}s"


def branch_named(name: str) -> str:
    """ "branch **main**", or "**branch 2**" for a name that already says branch (never "branch branch 2")."""
    return f"**{name}**" if name.lower().startswith("branch") else f"branch **{name}**"


CONVERSATION_LABEL = (
    "Prompt: the conversation of this branch (from the Chat tab; switch to another branch to edit the prompt)"
)


def conversation(messages: tuple[dict, ...] | None) -> str:
    """A conversation branch's prompt as it reads: each turn under its role; blank for a prompt-box branch."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages or ())


def model_markdown(status: dict) -> str:
    """The model line: id, where it runs, or that it is loading; a failed load is told in a toast."""
    if status.get("state") == "loading":
        # vLLM's first start compiles the model: say why the wait is long
        wait = " on vLLM (a first start compiles it: a minute or more)" if status.get("engine") == "vllm" else ""
        return f"**Loading** `{status.get('model_id', '')}`{wait}…"
    head = f"**Model** `{status['model_id']}` ({status['source']}, {status['device']}, {status['dtype']})"
    if status.get("state") == "ready":
        chat = "chat template" if status["has_chat_template"] else "no chat template"
        head += f" · vocabulary {status['vocab_size']:,} · context {status['context_length']:,} · {chat}"
        if status.get("engine", "transformers") != "transformers":  # vLLM: its placement, and what it cannot do
            no_grad = "" if status.get("gradients", True) else ", no attribution or logit lens"
            head += f" · served by {status['placement']}{no_grad}"
    return head


def choice_note(meta: dict, index: int) -> str:
    """What the explorer says about an earlier token when it is clicked."""
    token = meta["token"]["display"]
    how = meta["how"].replace("_", " ")
    draw = f", draw u = {meta['draw']:.4f}" if meta.get("draw") is not None else ""
    return (
        f"Token {index + 1} **{token}** was {how}{draw}. The bars show the distribution in force then: "
        "pick another candidate to branch from here."
    )

"""Turn API results into what the components show: token spans, candidate rows, summaries."""

from __future__ import annotations

COLOR_MAP = {
    "prompt": "#e5e7eb",
    "special": "#c4b5fd",
    "greedy": "#bfdbfe",
    "sampled": "#93c5fd",
    "forced": "#fdba74",
}
CANDIDATE_HEADERS = ["token", "id", "p_base", "p_final", "kept"]
STAGE_HEADERS = ["token", "base", "penalties", "temperature", "constraint", "top-p (final)"]
STAGE_KEYS = ("base", "penalties", "temperature", "constraint", "top_p")


def token_spans(result: dict, meta: list[dict]) -> list[tuple[str, str]]:
    """(display, label) pairs for the prompt and completion; the label says special / how chosen."""
    spans = [(t["display"], "special" if t["special"] else "prompt") for t in result["prompt_tokens"]]
    for i, token in enumerate(result["completion_tokens"]):
        how = meta[i]["how"] if i < len(meta) else "forced"
        label = "forced" if how.startswith("forced") else how
        spans.append((token["display"], "special" if token["special"] else label))
    return spans


def status_of(row: dict) -> str:
    if not row["valid"]:
        return "⊘"
    return "kept" if row["kept"] else "✂"


def candidate_rows(dist: dict | None) -> list[list]:
    if not dist:
        return []
    return [[r["display"], r["id"], f"{r['p_base']:.1%}", f"{r['p_final']:.1%}", status_of(r)] for r in dist["tokens"]]


def stage_rows(dist: dict | None, limit: int = 8) -> list[list]:
    """Probability of the top candidates after each stage, in pipeline order."""
    if not dist:
        return []
    return [[r["display"], *(f"{r['stages'][k]:.1%}" for k in STAGE_KEYS)] for r in dist["tokens"][:limit]]


def summary(result: dict, model: dict) -> str:
    """One line under the tokens: position, entropies, nucleus size, finish reason, notices."""
    n_prompt, n_done = len(result["prompt_tokens"]), len(result["completion_ids"])
    parts = [f"**{n_done}** completion tokens after a **{n_prompt}**-token prompt (context {result['context_length']})"]
    dist = result.get("dist")
    if dist:
        parts.append(f"entropy {dist['entropy_base']:.2f} → {abs(dist['entropy_final']):.2f} bits")
        parts.append(f"{dist['kept_token_count']} token(s) in play")
        if dist["constraint_active"]:
            parts.append(f"constraint: {dist['constraint_type']}")
    if result["finished"]:
        parts.append(f"**finished: {result['finish_reason'].replace('_', ' ')}**")
    if result.get("notice"):
        parts.append(f"*{result['notice']}*")
    parts.append(f"model `{model.get('model_id', '')}`")
    return " · ".join(parts)


def status_markdown(status: dict) -> str:
    state = status.get("state", "")
    if state == "loading":
        return f"**Loading** `{status.get('model_id', '')}`…"
    head = f"**Model** `{status['model_id']}` ({status['source']}, {status['device']}, {status['dtype']})"
    if state == "error" or status.get("error"):
        head = ("**Error:** " if state == "error" else head + "  \n**Last load failed:** ") + status.get("error", "")
    if state == "ready":
        chat = "chat template" if status["has_chat_template"] else "no chat template"
        head += f"  \nvocabulary {status['vocab_size']:,} · context {status['context_length']:,} · {chat}"
    return head


def choice_note(meta: dict, index: int) -> str:
    """What the explorer says about an earlier token when it is clicked."""
    token = meta["token"]["display"]
    how = meta["how"].replace("_", " ")
    draw = f", draw u = {meta['draw']:.4f}" if meta.get("draw") is not None else ""
    return (
        f"Token {index + 1} **{token}** was {how}{draw}. Below: the distribution in force then. "
        "Pick another candidate to branch from here."
    )

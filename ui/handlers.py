"""Event handlers of the explorer: read the controls, call the service, return component values.

Handlers take (state, *knob values) in the order of KNOB_FIELDS and return the values of
`OUTPUTS` in app.py. A ValueError from the service becomes a gr.Error and the state is not
returned, so the user's prompt, completion and branches stay as they were.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path

import gradio as gr

from decoding import service
from decoding.params import PRESETS
from decoding.tokens import show_whitespace

from . import compare, heatmap, plots, render, session

log = logging.getLogger(__name__)

KNOB_FIELDS = (
    "prompt", "system_prompt", "use_chat_template", "temperature", "top_p", "repetition_penalty",
    "presence_penalty", "frequency_penalty", "seed", "top_k", "stop_sequences",
    "constraint_enabled", "constraint_type", "constraint_schema", "llm_on",
)  # fmt: skip
# What `view` returns, in order; app.py wires the components in this order.
OUTPUT_NAMES = ("tokens", "plot", "candidates", "summary", "state", "branch", "stages", "back", "timeline")
OUTPUT_COUNT = len(OUTPUT_NAMES)
PARAM_FIELDS = ("temperature", "top_p", "repetition_penalty", "presence_penalty", "frequency_penalty")


def user_errors(fn):
    """Show ValueErrors as readable messages and never a traceback; the outputs stay untouched."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as exc:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}): {exc}", print_exception=False) from None

    return wrapper


def knobs_dict(values) -> dict:
    return dict(zip(KNOB_FIELDS, values, strict=True))


def request_for(state: dict, knobs: dict) -> dict:
    """The API request of the current branch under the current controls."""
    seed = str(knobs["seed"] or "").strip()
    if seed and not seed.isdigit():
        raise ValueError(f"seed {seed!r} is not accepted: use a whole number from 0 to 2**63-1, or leave it blank")
    stops = [s for s in (knobs["stop_sequences"] or "").split("\n") if s]
    params = {name: float(knobs[name]) for name in PARAM_FIELDS}
    params |= {"seed": int(seed) if seed else None, "stop_sequences": stops}
    return {
        "branch_id": state["current"],
        "prompt": knobs["prompt"] or "",
        "system_prompt": knobs["system_prompt"] or "",
        "use_chat_template": bool(knobs["use_chat_template"]),
        "completion_ids": session.current(state)["ids"],
        "top_k": int(knobs["top_k"]),
        "params": params,
        "constraint": {
            "enabled": bool(knobs["constraint_enabled"]),
            "type": knobs["constraint_type"],
            "schema": knobs["constraint_schema"] or "",
        },
    }


def prompt_key(knobs: dict) -> list:
    return [knobs["prompt"], knobs["system_prompt"], bool(knobs["use_chat_template"])]


def view(state: dict, result: dict) -> tuple:
    """Component values for a result: tokens, figure, candidate rows, summary, state, branch picker, stages.

    While an earlier token is inspected, the figure and table show the distribution in force when
    that token was chosen, and picking a candidate there branches.
    """
    meta = session.current(state)["meta"]
    inspect = state.get("inspect")
    if inspect is not None and inspect < len(meta):
        return _inspect_view(state, result, meta, inspect)
    dist = result.get("dist")
    position = len(result["completion_ids"])
    last = state.get("last_final") or {}
    ghost = last.get("p") if last.get("position") == position and last.get("branch") == state["current"] else None
    out = dict(state)
    out["last_final"] = {
        "position": position,
        "branch": state["current"],
        "p": {r["id"]: r["p_final"] for r in dist["tokens"]} if dist else {},
        "rows": [r["id"] for r in dist["tokens"]] if dist else [],
    }
    ghost = {int(k): v for k, v in ghost.items()} if ghost else None
    figure = plots.distribution_figure(dist, ghost, empty=_empty_note(result))
    return _outputs(out, result, meta, dist, figure, render.summary(result, service.model_status()), False)


def _outputs(state: dict, result: dict, meta: list[dict], dist, figure, summary: str, inspecting: bool) -> tuple:
    """The values of OUTPUT_NAMES, in order."""
    return (
        render.token_spans(result, meta),
        figure,
        render.candidate_rows(dist),
        summary,
        state,
        gr.Dropdown(choices=session.branch_choices(state), value=state["current"]),
        render.stage_rows(dist),
        gr.Button(visible=inspecting),
        plots.timeline_figure(meta),
    )


def _empty_note(result: dict) -> str:
    if result["finished"]:
        return f"No distribution: the completion is finished ({result['finish_reason'].replace('_', ' ')})."
    return "The model is switched off: no distribution. Forcing text still works."


def _inspect_view(state: dict, result: dict, meta: list[dict], index: int) -> tuple:
    dist = meta[index]["dist"]
    out = dict(state)
    out["last_final"] = {"position": None, "branch": None, "p": {}, "rows": [r["id"] for r in dist["tokens"]]}
    figure = plots.distribution_figure(dist, None, chosen=meta[index]["token"]["id"])
    return _outputs(out, result, meta, dist, figure, render.choice_note(meta[index], index), True)


@user_errors
def preview(state: dict, *values) -> tuple:
    return _refresh(session.inspecting(state, None), knobs_dict(values))


def constraint_example(kind: str) -> tuple:
    """A new constraint type starts from its example, with its help text."""
    from decoding.constraints import EXAMPLES

    return EXAMPLES.get(kind, ""), "(none)"


def constraint_preset(name: str) -> tuple:
    from decoding.constraints import PRESETS

    if name not in PRESETS:
        return gr.update(), gr.update()
    kind, schema = PRESETS[name]
    return kind, schema


def _advance(state: dict, knobs: dict, **force) -> tuple[dict, dict]:
    state = session.inspecting(session.for_prompt(state, prompt_key(knobs)), None)
    request = request_for(state, knobs)
    if knobs["llm_on"]:
        result = service.step(request | force)
    elif "force_text" in force:
        result = service.append_text(request, force["force_text"])
    else:
        raise ValueError("the model is switched off: switch it on to step, or force text")
    return session.with_result(state, result), result


def _step(state: dict, knobs: dict, **force) -> tuple:
    return view(*_advance(state, knobs, **force))


@user_errors
def step(state: dict, *values) -> tuple:
    return _step(state, knobs_dict(values))


@user_errors
def force_text(state: dict, text: str, *values) -> tuple:
    if not text:
        raise ValueError("the text to force is empty: type the text to append")
    return _step(state, knobs_dict(values), force_text=text)


@user_errors
def force_candidate(evt: gr.SelectData, state: dict, *values) -> tuple:
    """Clicking a candidate appends it; while inspecting an earlier token, it branches there instead."""
    rows = (state.get("last_final") or {}).get("rows") or []
    row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
    if not isinstance(row, int) or not 0 <= row < len(rows):
        raise ValueError("that row is not a candidate of the current distribution: step or preview first")
    knobs = knobs_dict(values)
    state = session.for_prompt(state, prompt_key(knobs))
    inspect = state.get("inspect")
    if inspect is not None:
        state = session.forked(session.inspecting(state, None), inspect)
    return _step(state, knobs, force_token_id=rows[row])


@user_errors
def delete_last(state: dict, *values) -> tuple:
    knobs = knobs_dict(values)
    state = session.inspecting(session.for_prompt(state, prompt_key(knobs)), None)
    ids = session.current(state)["ids"]
    if not ids:
        raise ValueError("the completion is empty: there is no token to delete")
    return _refresh(session.truncated(state, len(ids) - 1), knobs)


@user_errors
def select_token(evt: gr.SelectData, state: dict, *values) -> tuple:
    """Click on the last completion token deletes it; on an earlier one, shows how it was chosen."""
    knobs = knobs_dict(values)
    state = session.for_prompt(state, prompt_key(knobs))
    result = service.render(request_for(state, knobs))
    index = evt.index - len(result["prompt_tokens"]) if isinstance(evt.index, int) else -1
    n_done = len(result["completion_ids"])
    if index < 0:
        raise ValueError("that is a prompt token: click a completion token to inspect or delete it")
    if index == n_done - 1:
        return delete_last(session.inspecting(state, None), *values)
    meta = session.current(state)["meta"]
    if index >= len(meta) or not meta[index].get("dist"):
        raise ValueError(
            "there is no record of how that token was chosen (forced with the model off, or opened from"
            " the chat): step from here to record distributions"
        )
    return view(session.inspecting(state, index), result)


@user_errors
def back_to_end(state: dict, *values) -> tuple:
    return _refresh(session.inspecting(state, None), knobs_dict(values))


def _refresh(state: dict, knobs: dict) -> tuple:
    state = session.for_prompt(state, prompt_key(knobs))
    show = service.preview if knobs["llm_on"] else service.render
    return view(state, show(request_for(state, knobs)))


@user_errors
def switch_branch(state: dict, branch_id: str, *values) -> tuple:
    return _refresh(session.inspecting(session.switched(state, branch_id), None), knobs_dict(values))


@user_errors
def fork_branch(state: dict, name: str, *values) -> tuple:
    state = session.inspecting(state, None)
    return _refresh(session.forked(state, len(session.current(state)["ids"]), name), knobs_dict(values))


@user_errors
def rename_branch(state: dict, name: str, *values) -> tuple:
    return _refresh(session.renamed(state, state["current"], name), knobs_dict(values))


@user_errors
def delete_branch(state: dict, *values) -> tuple:
    return _refresh(session.inspecting(session.deleted(state, state["current"]), None), knobs_dict(values))


@user_errors
def clear(state: dict, *values) -> tuple:
    knobs = knobs_dict(values)
    return _refresh(session.truncated(session.inspecting(session.for_prompt(state, prompt_key(knobs)), None), 0), knobs)


def apply_preset(name: str) -> list:
    """Slider values of a preset (the greedy preset sets temperature 0)."""
    if name not in PRESETS:
        return [gr.update() for _ in PARAM_FIELDS]
    params = PRESETS[name].params
    temperature = 0.0 if params.is_greedy else params.temperature
    return [temperature, params.top_p, params.repetition_penalty, params.presence_penalty, params.frequency_penalty]


def model_status_view() -> tuple:
    status = service.model_status()
    return render.status_markdown(status), gr.Timer(active=status["state"] == "loading")


@user_errors
def load_model(model_id: str) -> str:
    return render.status_markdown(service.load_model(model_id))


PLAY, PAUSE = "▶ Play", "⏸ Pause"


def toggle_play(state: dict, speed: float) -> tuple:
    """Start or stop auto-stepping; `speed` is in steps per second."""
    playing = not state.get("playing")
    out = dict(state) | {"playing": playing, "auto_steps": 0}
    return gr.Timer(value=1.0 / max(float(speed), 0.1), active=playing), gr.Button(PAUSE if playing else PLAY), out


def set_speed(speed: float) -> gr.Timer:
    return gr.Timer(value=1.0 / max(float(speed), 0.1))


def auto_step(state: dict, max_steps: float, *values) -> tuple:
    """One timer tick: a step, then stop at a finish reason, an error or the max-steps guard."""
    idle = tuple(gr.update() for _ in range(OUTPUT_COUNT))
    stop = (gr.Timer(active=False), gr.Button(PLAY))
    if not state.get("playing"):
        return (*idle, *stop)
    try:
        new_state, result = _advance(state, knobs_dict(values))
    except ValueError as exc:
        gr.Warning(f"Auto-step stopped: {exc}")
        return (*idle[:4], dict(state) | {"playing": False}, *idle[5:], *stop)
    done = state.get("auto_steps", 0) + 1
    playing = not result["finished"] and done < int(max_steps)
    shown = view(new_state | {"playing": playing, "auto_steps": done}, result)
    return (*shown, *((gr.update(), gr.update()) if playing else stop))


SETTING_FIELDS = (*KNOB_FIELDS, "model_id", "preset", "speed", "max_steps", "attribution_method")


def save_settings(*values) -> dict:
    """Everything a user set, stored in the browser as one dict (falsy values are not stored alone)."""
    return dict(zip(SETTING_FIELDS, values, strict=True))


def restore_settings(saved: dict | None) -> list:
    """Component values from stored settings; missing or unusable entries keep the current value."""
    saved = saved if isinstance(saved, dict) else {}
    return [saved[name] if name in saved and saved[name] is not None else gr.update() for name in SETTING_FIELDS]


def export_session(state: dict, *values) -> str:
    path = Path(tempfile.mkdtemp(prefix="nexttoken-")) / "session.json"
    path.write_text(session.export_json(state, save_settings(*values)), encoding="utf-8")
    return str(path)


@user_errors
def import_session(file, state: dict) -> tuple:
    """Settings values and the imported state; the explorer refreshes afterwards."""
    if file is None:
        raise ValueError("no session file was given")
    text = Path(file if isinstance(file, str) else file.name).read_text(encoding="utf-8", errors="replace")
    new_state, settings = session.import_json(text)
    new_state["key"] = prompt_key(
        {name: settings.get(name) or "" for name in ("prompt", "system_prompt")}
        | {"use_chat_template": settings.get("use_chat_template")}
    )
    return (*restore_settings(settings), new_state | {"imported": True})


def attribution_panel(state: dict, method: str, *values) -> str:
    """The hover panel for the current tokens; empty while the prompt or the model is unusable."""
    knobs = knobs_dict(values)
    state = session.for_prompt(state, prompt_key(knobs))
    request = request_for(state, knobs)
    try:
        result = (service.preview if knobs["llm_on"] else service.render)(request)
    except ValueError:
        return ""
    return heatmap.panel_html({k: request[k] for k in ATTRIBUTION_REQUEST}, result, method)


ATTRIBUTION_REQUEST = ("prompt", "system_prompt", "use_chat_template", "completion_ids", "branch_id")


PROGRESS = gr.Progress()


@user_errors
def explain_token(progress=PROGRESS, *values) -> tuple:
    """Attribution for the inspected token, else the last token, else the most likely next token.

    `values` are (state, method, aggregation, ig_steps, *knobs); progress comes first so Gradio injects it.
    """
    state, method, aggregation, ig_steps, *rest = values
    knobs = knobs_dict(rest)
    state = session.for_prompt(state, prompt_key(knobs))
    request = {k: v for k, v in request_for(state, knobs).items() if k in ATTRIBUTION_REQUEST}
    ids = session.current(state)["ids"]
    inspect = state.get("inspect")
    if inspect is not None or ids:
        request["target_index"] = inspect if inspect is not None else len(ids) - 1
    else:
        rows = (state.get("last_final") or {}).get("rows") or []
        if not rows:
            raise ValueError("nothing to explain yet: step once, or preview the prompt")
        request["target_token_id"] = rows[0]
    progress(0.1, desc=f"{method.replace('_', ' ')}…")
    result = service.attribution(request | {"method": method, "aggregation": aggregation, "ig_steps": int(ig_steps)})
    return heatmap.heatmap_spans(result), heatmap.legend(result)


@user_errors
def compare_branches(state: dict, other: str | None) -> str:
    if not other:
        raise ValueError("choose a branch to compare with")
    return compare.compare_html(state, other)


def compare_choices(state: dict) -> gr.Dropdown:
    return gr.Dropdown(choices=session.branch_choices(state))


LENS_TOP_K = 5


@user_errors
def logit_lens(state: dict, *values) -> list[list]:
    """A layer by top-k table: what each layer would predict next, through the final norm and the unembedding."""
    knobs = knobs_dict(values)
    state = session.for_prompt(state, prompt_key(knobs))
    out = service.logit_lens(request_for(state, knobs), LENS_TOP_K)
    return [
        [f"{row['layer']}" if row["layer"] else "0 (embeddings)"]
        + [f"{show_whitespace(text)} {p:.0%}" for _, text, p in row["tokens"]]
        for row in reversed(out["layers"])
    ]


def model_choices() -> gr.Dropdown:
    return gr.Dropdown(choices=service.POLICY.allowed_models())

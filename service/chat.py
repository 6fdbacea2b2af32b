"""Multi-turn chat with the shared model: its sampling settings, the chat template over the history, replies
streamed token by token with how each was chosen."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from backends.lane import LANE
from backends.model import STORE
from decoding import fields
from decoding.engine import engine_for
from decoding.request import Message, Request, parse_messages
from decoding.sampling.params import DecodingParams
from decoding.sampling.presets import PRESETS
from service import operations as service

# The chat's preset: on the embedded model a hotter one answers "What is the capital of France?" in French
# gibberish most of the time (its first token is " The" 15 % against "L" 14 %, "La" 10 %).
CHAT_PRESET = "chat"


def chat_params(preset: str, temperature: float, seed: int | None = None) -> DecodingParams:
    """The chat's sampling settings: the preset's knobs with the chat's own temperature (0 = greedy)."""
    if preset not in PRESETS:
        raise ValueError(f"chat preset {preset!r} is not accepted: pick one of {', '.join(PRESETS)}")
    params = replace(PRESETS[preset].params, temperature=temperature, seed=seed)  # the temperature is checked here
    return replace(params, greedy=params.greedy and params.temperature == 0.0)


def stream_reply(
    messages: list[dict], max_tokens: int, params: DecodingParams, system_prompt: str = ""
) -> Iterator[tuple[str, list[dict]]]:
    """Yield (reply text so far, the choice record of each reply token so far) as each token is chosen.

    A record is what a step records (`token`, `how`, `dist`, `draw`). `messages` is the conversation ending
    with the user's new message; the chat budgets apply (see `service.check_chat`), and the conversation
    plus the reply must fit the context budget.
    """
    turns = parse_messages(messages)
    if not turns or turns[-1].role != "user":
        raise ValueError("the conversation must end with the user's message: type something to send")
    service.check_chat(turns[-1].content, [m.as_dict() for m in turns[:-1]], max_tokens)
    max_tokens = int(max_tokens)  # an integral float (10.0) passed the check
    system = (Message("system", fields.text("system_prompt", system_prompt)),) if system_prompt else ()
    req = Request(prompt="", params=params, branch_id="chat", messages=(*system, *turns))
    engine = engine_for(STORE.get())
    prompt, _ = engine.prompt_ids(req)
    service.POLICY.settings.budgets.check("max_context_tokens", len(prompt) + max_tokens, "conversation + reply")
    engine.check_context(prompt, ())
    ids: list[int] = []
    records: list[dict] = []
    for choice in LANE.sliced(engine.generate(req, prompt, max_tokens)):  # others use the model between tokens
        if choice.token["id"] in engine.eos_ids:
            break
        ids.append(choice.token["id"])
        records.append(choice.as_dict())
        yield engine.view.decode(ids), list(records)

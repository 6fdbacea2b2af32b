"""Multi-turn chat with the shared model: the chat template over the history, replies streamed token by token."""

from __future__ import annotations

from collections.abc import Iterator

from backends.lane import LANE
from backends.model import STORE
from decoding import fields
from decoding.engine import engine_for
from decoding.request import Message, Request, parse_messages
from decoding.sampling.params import DecodingParams
from service import operations as service


def stream_reply(
    messages: list[dict], max_tokens: int, temperature: float, system_prompt: str = "", seed: int | None = None
) -> Iterator[tuple[str, list[int]]]:
    """Yield (reply text so far, reply ids so far) as each token is chosen.

    `messages` is the conversation ending with the user's new message; the chat budgets apply
    (see `service.check_chat`), and the conversation plus the reply must fit the context budget.
    """
    turns = parse_messages(messages)
    if not turns or turns[-1].role != "user":
        raise ValueError("the conversation must end with the user's message: type something to send")
    service.check_chat(turns[-1].content, [m.as_dict() for m in turns[:-1]], max_tokens)
    max_tokens = int(max_tokens)  # an integral float (10.0) passed the check
    system = (Message("system", fields.text("system_prompt", system_prompt)),) if system_prompt else ()
    params = DecodingParams(temperature=temperature, top_p=0.95, repetition_penalty=1.05, seed=seed)
    req = Request(prompt="", params=params, branch_id="chat", messages=(*system, *turns))
    engine = engine_for(STORE.get())
    prompt, _ = engine.prompt_ids(req)
    service.POLICY.settings.budgets.check("max_context_tokens", len(prompt) + max_tokens, "conversation + reply")
    engine.check_context(prompt, ())
    ids: list[int] = []
    for token in LANE.sliced(engine.generate(req, prompt, max_tokens)):  # others use the model between tokens
        if token in engine.eos_ids:
            break
        ids.append(token)
        yield engine.view.decode(ids), list(ids)

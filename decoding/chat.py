"""Multi-turn chat with the shared model: the chat template over the history, replies streamed token by token."""

from __future__ import annotations

from collections.abc import Iterator

from .engine import Request, engine_for
from .model import STORE
from .params import DecodingParams

MAX_REPLY_TOKENS = 512


def chat_prompt_ids(messages: list[dict], system_prompt: str = "") -> tuple[int, ...]:
    """Token ids of the conversation with the generation prompt; ValueError if the model has no chat template."""
    loaded = STORE.get()
    if not loaded.has_chat_template:
        raise ValueError(
            f"model {loaded.model_id!r} has no chat template, so it cannot chat: use the explorer with a raw prompt"
        )
    history = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + messages
    out = loaded.tokenizer.apply_chat_template(history, add_generation_prompt=True, tokenize=True, return_dict=True)
    return tuple(int(i) for i in out["input_ids"])


def stream_reply(
    messages: list[dict], max_tokens: int, temperature: float, system_prompt: str = "", seed: int | None = None
) -> Iterator[tuple[str, list[int]]]:
    """Yield (reply text so far, reply ids so far) as each token is chosen."""
    if not 1 <= int(max_tokens) <= MAX_REPLY_TOKENS:
        raise ValueError(f"max reply tokens {max_tokens!r} is out of range: accepted is 1 to {MAX_REPLY_TOKENS}")
    if not messages or not str(messages[-1].get("content", "")).strip():
        raise ValueError("the message is empty: type something to send")
    params = DecodingParams(temperature=float(temperature), top_p=0.95, repetition_penalty=1.05, seed=seed)
    engine = engine_for(STORE.get())
    prompt = chat_prompt_ids(messages, system_prompt)
    engine.check_context(prompt, ())
    req = Request(prompt="chat", params=params, branch_id="chat")
    ids: list[int] = []
    for token in engine.generate(req, prompt, int(max_tokens)):
        if token in engine.eos_ids:
            break
        ids.append(token)
        yield engine.view.decode(ids), list(ids)

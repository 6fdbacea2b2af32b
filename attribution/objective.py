"""The attributed quantity: log p(target | context) at the last position, or log p(target) - log p(foil).

Every method explains the same number, so a contrastive question ("why A rather than B?") is one
function for all of them; `baseline_id` names the token that stands in for a removed one (ablation and
the faithfulness numbers).
"""

from __future__ import annotations

import torch

from backends.model import LoadedModel


def target_score(logits: torch.Tensor, target_id: int, foil_id: int | None = None) -> torch.Tensor:
    """[B, V] last-position logits -> [B]: log p(target), minus log p(foil) when a foil is given."""
    logprobs = logits.float().log_softmax(-1)
    score = logprobs[:, target_id]
    return score if foil_id is None else score - logprobs[:, foil_id]


def describe(target_id: int, foil_id: int | None) -> str:
    if foil_id is None:
        return f"log p(token {target_id})"
    return f"log p(token {target_id}) - log p(token {foil_id})"


def baseline_id(loaded: LoadedModel) -> int:
    """The id that replaces a removed token: the tokenizer's pad token if it has one, else its eos token."""
    tokenizer = loaded.tokenizer
    for token in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(token, int) and 0 <= token < loaded.vocab_size:
            return token
    raise ValueError(f"{loaded.model_id} has neither a pad nor an eos token to stand in for a removed token")

"""The reference model at one position: its distribution under the same knobs, and how far it is from the main one.

A request may name a reference (`"reference": {"model", "dtype", "quantization", "engine"}`, backends.reference).
Its logits at the position go through the same stage chain as the main model's (the engine's `stages_from`:
the same knobs, constraint and draws; `Engine._reference_effect` runs it), so each display row carries the
reference's `p_base_reference` and `p_final_reference`, and the distribution carries:

- `kl_reference_final`: KL(main p_final || reference p_final) in bits (null with a reason where infinite: the
  reference's knobs give 0 to a token the main model keeps), and `kl_reference_base`: the same of p_base,
  from both models' logits in float64 (never infinite);
- `tv_reference`: the total variation of p_final, half the sum of the absolute differences;
- `top_agrees`: whether both p_final have the same most likely token;
- `rank_under_reference`: the rank of the main model's top token by the reference's p_base (1: its top too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decoding.divergence import kl_bits, kl_or_reason
from decoding.sampling.chain import Stages


@dataclass(frozen=True)
class ReferenceEffect:
    """The reference's p_base and p_final at a position, and its distance from the main model's."""

    p_base: torch.Tensor
    p_final: torch.Tensor
    kl_final: float | None
    kl_final_reason: str | None
    kl_base: float
    tv: float
    top_agrees: bool
    rank: int
    described: str

    @classmethod
    def of(cls, main: Stages, main_logits: torch.Tensor, ref: Stages, ref_logits: torch.Tensor, described: str):
        """The reference's stages beside the main model's at one position (logits: both models' raw rows)."""
        kl_final, reason = kl_or_reason(main.p_final, ref.p_final, "the main model", "the reference's p_final")
        log_main, log_ref = (torch.log_softmax(x.double(), dim=-1) for x in (main_logits, ref_logits))
        top = main.argmax()
        return cls(
            p_base=ref.p_base,
            p_final=ref.p_final,
            kl_final=kl_final,
            kl_final_reason=reason,
            kl_base=kl_bits(log_main, log_ref),
            tv=0.5 * float((main.p_final.double() - ref.p_final.double()).abs().sum()),
            top_agrees=top == ref.argmax(),
            rank=1 + int((ref.p_base > ref.p_base[top]).sum()),
            described=described,
        )

    def row(self, row: dict) -> dict:
        """A display row with the reference's probabilities of its token."""
        token = row["id"]
        return row | {"p_base_reference": float(self.p_base[token]), "p_final_reference": float(self.p_final[token])}

    def annotate(self, summary: dict) -> dict:
        """A distribution's dict with the reference's probabilities on every row and the distances."""
        summary["tokens"] = [self.row(row) for row in summary["tokens"]]
        summary["pushed_down"] = [self.row(row) for row in summary["pushed_down"]]
        return summary | {
            "reference": self.described,
            "kl_reference_final": self.kl_final,
            "kl_reference_final_reason": self.kl_final_reason,
            "kl_reference_base": self.kl_base,
            "tv_reference": self.tv,
            "top_agrees": self.top_agrees,
            "rank_under_reference": self.rank,
        }


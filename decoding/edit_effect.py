"""What a model edit changed at one position: the unedited model's distribution beside the edited one.

With interventions the distribution's rows are the edited model's (its p_base, every stage after it); each
row also carries the unedited model's `p_base_unedited` and `p_final_unedited` (the same knobs and constraint
on the unedited logits), and the distribution carries `kl_edit`: KL(edited p_final || unedited p_final) in
bits, the information the edit adds to the choice (null with a reason where it is infinite: the unedited
knobs give p_final 0 to a token the edited model keeps), and `edits`: the edits in words.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decoding.divergence import kl_or_reason


@dataclass(frozen=True)
class EditEffect:
    """The unedited model's p_base and p_final at a position, and KL(edited || unedited) of p_final in bits."""

    p_base: torch.Tensor
    p_final: torch.Tensor
    kl_bits: float | None
    kl_reason: str | None
    edits: tuple[str, ...]

    @classmethod
    def of(cls, edited_final: torch.Tensor, p_base: torch.Tensor, p_final: torch.Tensor, edits: tuple[str, ...]):
        """The effect of `edits` on a position whose edited p_final is `edited_final`."""
        kl, reason = kl_or_reason(edited_final, p_final, "the edited model", "the unedited p_final")
        return cls(p_base, p_final, kl, reason, edits)

    def row(self, row: dict) -> dict:
        """A display row with the unedited model's probabilities of its token."""
        token = row["id"]
        return row | {"p_base_unedited": float(self.p_base[token]), "p_final_unedited": float(self.p_final[token])}

    def annotate(self, summary: dict) -> dict:
        """A distribution's dict with the unedited probabilities on every row, `kl_edit` and the edits named."""
        summary["tokens"] = [self.row(row) for row in summary["tokens"]]
        summary["pushed_down"] = [self.row(row) for row in summary["pushed_down"]]
        return summary | {"kl_edit": self.kl_bits, "kl_edit_reason": self.kl_reason, "edits": list(self.edits)}

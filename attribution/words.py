"""Scores per word: subword tokens of one word grouped and their scores summed.

A word starts where the visible text does: at a token whose text begins with whitespace, after a token
whose text ends with whitespace, and at the first token. Special tokens (chat markers, bos) are words of
their own. Raw scores are summed; display scores are the summed shares when the tokens' display scores
are shares (unsigned), else the word sums divided by the largest |word sum|, as for tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    """Tokens [start, end) of the context, their joined text, summed score and display score."""

    start: int
    end: int
    text: str
    score: float
    normalized: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def word_spans(texts: Sequence[str], special: Sequence[bool]) -> list[tuple[int, int]]:
    """[start, end) token ranges of the words of a context, from each token's text and special flag."""
    spans: list[tuple[int, int]] = []
    for i, text in enumerate(texts):
        previous = texts[i - 1] if i else ""
        starts = i == 0 or special[i] or special[i - 1] or text[:1].isspace() or previous[-1:].isspace() or not text
        if starts:
            spans.append((i, i + 1))
        else:
            spans[-1] = (spans[-1][0], i + 1)
    return spans


def words(
    texts: Sequence[str], special: Sequence[bool], scores: Sequence[float], normalized: Sequence[float], signed: bool
) -> tuple[Word, ...]:
    """The context's words with summed scores (see the module docstring for the display scores)."""
    if not len(texts) == len(special) == len(scores) == len(normalized):
        raise ValueError(f"{len(texts)} token texts for {len(scores)} scores: give one text per scored token")
    spans = word_spans(texts, special)
    sums = [sum(scores[a:b]) for a, b in spans]
    if signed:
        peak = max((abs(s) for s in sums), default=0.0)
        shown = [s / peak if peak > 0 else 0.0 for s in sums]
    else:
        shown = [sum(normalized[a:b]) for a, b in spans]
    return tuple(
        Word(a, b, "".join(texts[a:b]), float(total), float(display))
        for (a, b), total, display in zip(spans, sums, shown, strict=True)
    )

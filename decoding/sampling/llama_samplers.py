"""llama.cpp's samplers that transformers lacks: top-n-sigma, XTC and DRY, as pure functions.

Each follows the definition of its sampler in llama.cpp (src/llama-sampling.cpp) and passes the numeric
cases of llama.cpp's own sampler tests (tests/test-sampling.cpp). Like the knobs, each takes a 1-D float32
logits tensor, leaves it unmodified, returns it as it is when off, and otherwise returns new logits with the
removed tokens at -inf (DRY lowers logits instead of removing tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
import torch

from decoding.sampling.knobs import NEG_INF, copied, masked

# DRY's defaults, as in llama.cpp's common parameters.
DRY_BASE = 1.75
DRY_ALLOWED_LENGTH = 2
DRY_PENALTY_LAST_N = -1
DRY_SEQUENCE_BREAKERS = ("\n", ":", '"', "*")
MAX_BREAKER_BYTES = 40  # llama.cpp truncates a longer breaker; here it is refused
MAX_BREAKER_TAIL = 20  # tokens of a breaker's tail kept after its head token, as llama.cpp
FLOAT_MAX_LOG = 88.7228391  # log of float32's largest value: DRY's exponent is clamped below it

# head token id -> the token-id tails that complete a sequence breaker after it; () = the head alone breaks.
Breakers = Mapping[int, tuple[tuple[int, ...], ...]]
NO_BREAKERS: Breakers = MappingProxyType({})


def top_n_sigma(logits: torch.Tensor, n: float) -> torch.Tensor:
    """Keep the tokens whose logit is >= max - n * sigma; n <= 0 = off (Tang et al. 2024, top-nσ).

    max and sigma (the population standard deviation) are taken over the finite logits, so tokens already
    removed do not count. Ref: llama.cpp's top-n-sigma sampler; here the mean and sigma are summed in float64.
    """
    if n <= 0.0:
        return logits
    values = logits.detach().cpu().numpy().astype(np.float64)  # NumPy: one thread, and MPS has no float64
    finite = values[np.isfinite(values)]
    if finite.size <= 1:
        return logits
    below = values < finite.max() - n * finite.std()
    return masked(logits, torch.from_numpy(below).to(logits.device))


def xtc(logits: torch.Tensor, threshold: float, probability: float, u: float) -> torch.Tensor:
    """Exclude top choices: when u <= probability, remove every token with p >= threshold but the least likely.

    `u` is the caller's uniform draw in [0, 1) for this position, so the result is a pure function of it.
    Nothing happens when probability is 0, when u > probability, or when fewer than two tokens reach the
    threshold (so a threshold above 0.5 never acts). Only tokens still in play (finite logits) count. Among
    tokens tied for least likely, the one with the highest id stays. Ref: llama.cpp's XTC sampler (min_keep 0).
    """
    if probability <= 0.0 or u > probability:
        return logits
    valid = logits > NEG_INF  # tokens removed earlier are out of play, even when the threshold is 0
    reached = torch.nonzero((torch.softmax(logits.float(), dim=-1) >= threshold) & valid).flatten()
    if reached.numel() < 2:
        return logits
    ranked = reached[torch.argsort(logits[reached], descending=True, stable=True)]  # ties: ascending id
    return logits.index_fill(0, ranked[:-1], NEG_INF)


def dry(
    logits: torch.Tensor,
    context_ids: Sequence[int],
    multiplier: float,
    base: float = DRY_BASE,
    allowed_length: int = DRY_ALLOWED_LENGTH,
    penalty_last_n: int = DRY_PENALTY_LAST_N,
    breakers: Breakers = NO_BREAKERS,
) -> torch.Tensor:
    """DRY, "don't repeat yourself" (koboldcpp PR 982, by pi6am): lower the logit of each token that would
    extend a repeat; multiplier 0 = off.

    The window is the last `penalty_last_n` ids of `context_ids` (oldest first; -1 = all, 0 = off). Each
    earlier position whose window suffix also ends the window with n >= allowed_length tokens makes its next
    token continue a repeat of length n; n is capped at the tokens after the last sequence breaker in the
    window (`breakers`, see `sequence_breakers`). A token's penalty is multiplier * base ** (n - allowed_length)
    for its longest such n, subtracted from its logit; single-token breakers are never penalised.
    Ref: llama.cpp's DRY sampler, including its float32 overflow clamp of the exponent.
    """
    if multiplier == 0.0 or base < 1.0 or penalty_last_n == 0:
        return logits
    window = list(context_ids) if penalty_last_n < 0 else list(context_ids)[-penalty_last_n:]
    if len(window) <= allowed_length:
        return logits
    backwards = window[::-1]
    limit = _repeat_limit(backwards, breakers)
    if limit < allowed_length:
        return logits
    longest = _longest_repeats(backwards, limit, allowed_length)
    penalised = {t: n for t, n in longest.items() if () not in breakers.get(t, ())}
    if not penalised:
        return logits
    ids = torch.tensor(list(penalised), dtype=torch.long, device=logits.device)
    amounts = [_dry_penalty(n - allowed_length, multiplier, base) for n in penalised.values()]
    out = copied(logits)
    out[ids] = logits[ids] - torch.tensor(amounts, dtype=logits.dtype, device=logits.device)
    return out


def _longest_repeats(backwards: list[int], limit: int, allowed_length: int) -> dict[int, int]:
    """For each token that would extend a repeat of the window's end, the longest such repeat (capped at `limit`)."""
    longest: dict[int, int] = {}
    for k, match in enumerate(_z_function(backwards)[1:], start=1):
        length = min(match, limit)
        if length >= allowed_length:  # the token after this occurrence would make the repeat length + 1
            longest[backwards[k - 1]] = max(length, longest.get(backwards[k - 1], 0))
    return longest


def _dry_penalty(exponent: int, multiplier: float, base: float) -> float:
    """multiplier * base ** exponent in llama.cpp's float32 arithmetic, the exponent clamped below overflow."""
    base32 = np.float32(base)
    if base32 > np.float32(1.000001):
        exponent = min(exponent, int(np.float32(FLOAT_MAX_LOG) / np.log(base32)))
    return float(np.float32(float(np.float32(multiplier)) * float(base32) ** exponent))


def _repeat_limit(backwards: list[int], breakers: Breakers) -> int:
    """How many tokens follow the last sequence breaker of the window (`backwards` = newest first)."""
    for i, token in enumerate(backwards):
        tails = [t for t in breakers.get(token, ()) if len(t) <= i and _follows(backwards, i, t)]
        if tails:
            return i - max(len(t) for t in tails)
    return len(backwards)


def _follows(backwards: list[int], head: int, tail: tuple[int, ...]) -> bool:
    """Whether `tail` comes right after the token at `head` (indices count back from the newest token)."""
    return all(backwards[head - 1 - offset] == token for offset, token in enumerate(tail))


def _z_function(seq: list[int]) -> list[int]:
    """z[k] = length of the longest common prefix of seq and seq[k:] (z[0] = 0), in linear time."""
    z = [0] * len(seq)
    left = right = 0
    for k in range(1, len(seq)):
        if k < right:
            z[k] = min(right - k, z[k - left])
        while k + z[k] < len(seq) and seq[z[k]] == seq[k + z[k]]:
            z[k] += 1
        if k + z[k] > right:
            left, right = k, k + z[k]
    return z


def sequence_breakers(
    texts: Sequence[str],
    token_bytes: Callable[[int], bytes],
    vocab_size: int,
    tokenize: Callable[[str], Sequence[int]],
) -> Breakers:
    """The DRY breakers of a vocabulary, as llama.cpp builds them from breaker strings.

    A token whose bytes contain a breaker is a breaker alone (tail ()); a token whose bytes end with a
    proper prefix of a breaker starts one, completed by the tokens of the breaker's rest, at most
    MAX_BREAKER_TAIL of them. `token_bytes(id)` is the token's text as bytes (llama.cpp compares bytes);
    `tokenize(text)` gives the ids of a text without special tokens (it gets the rest decoded as UTF-8 with
    replacement). The scan covers the whole vocabulary: cache the result per tokenizer and breaker list.
    """
    found: dict[int, list[tuple[int, ...]]] = {}
    for text in check_sequence_breakers(texts):
        needle = text.encode()
        for token_id in range(vocab_size):
            for tail in _breaker_tails(token_bytes(token_id), needle, tokenize):
                if tail not in found.setdefault(token_id, []):
                    found[token_id].append(tail)
    return MappingProxyType({token: tuple(tails) for token, tails in found.items()})


def _breaker_tails(word: bytes, needle: bytes, tokenize: Callable[[str], Sequence[int]]) -> list[tuple[int, ...]]:
    """The tails that complete `needle` after a token with bytes `word`: [()] when the token holds it whole."""
    if needle in word:
        return [()]
    if needle[0] not in word:  # most tokens: no position can start the breaker
        return []
    rests = [needle[len(word) - start :] for start in range(len(word)) if needle.startswith(word[start:])]
    return [tuple(tokenize(rest.decode("utf-8", errors="replace")))[:MAX_BREAKER_TAIL] for rest in rests]


def check_sequence_breakers(value: object) -> tuple[str, ...]:
    """A list of non-empty strings of at most MAX_BREAKER_BYTES UTF-8 bytes, or a one-line ValueError."""
    accepted = f"a list of non-empty strings of at most {MAX_BREAKER_BYTES} bytes each"
    if not isinstance(value, list | tuple):
        raise ValueError(f"dry_sequence_breakers {value!r} is not a list: accepted is {accepted}")
    for item in value:
        if not isinstance(item, str) or not item or len(item.encode()) > MAX_BREAKER_BYTES:
            raise ValueError(f"dry_sequence_breakers item {item!r} is not accepted: accepted is {accepted}")
    return tuple(value)

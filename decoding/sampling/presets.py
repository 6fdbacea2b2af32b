"""Named sets of knob values the UI offers: today's four plus two that mirror llama.cpp's common defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from decoding.sampling.params import DecodingParams


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    params: DecodingParams = field(default_factory=DecodingParams)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "greedy",
            "Always the most likely token: deterministic.",
            DecodingParams(greedy=True, temperature=0.0, top_p=1.0, repetition_penalty=1.0),
        ),
        Preset(
            "balanced", "A good default for chat.", DecodingParams(temperature=0.7, top_p=0.8, repetition_penalty=1.05)
        ),
        Preset(
            "reliable",
            "Focused and factual: low temperature, narrow nucleus.",
            DecodingParams(temperature=0.3, top_p=0.5, repetition_penalty=1.1),
        ),
        Preset(
            "creative",
            "Varied and surprising: hot, wide nucleus, discourages repeats.",
            DecodingParams(
                temperature=1.1, top_p=0.95, repetition_penalty=1.0, presence_penalty=0.4, frequency_penalty=0.2
            ),
        ),
        Preset(
            "llama.cpp default",
            "llama.cpp's defaults, in its order: top-k 40, top-p 0.95, min-p 0.05, then temperature 0.8.",
            DecodingParams(
                temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repetition_penalty=1.0, sampler_order="llama.cpp"
            ),
        ),
        Preset(
            "min-p creative",
            "Hot (temperature 1.5) yet coherent: min-p 0.1 drops what is far below the best token.",
            DecodingParams(temperature=1.5, min_p=0.1, top_p=1.0, repetition_penalty=1.0),
        ),
    )
}

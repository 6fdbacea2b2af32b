"""Named sets of knob values the UI offers: five of our own (one for the chat) plus two that mirror llama.cpp's."""

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
            "balanced",
            "Between focused and varied: the explorer's default.",
            DecodingParams(temperature=0.7, top_p=0.8, repetition_penalty=1.05),
        ),
        Preset(
            "reliable",
            "Focused and factual: low temperature, narrow nucleus.",
            DecodingParams(temperature=0.3, top_p=0.5, repetition_penalty=1.1),
        ),
        Preset(
            # On the 135M embedded model a hotter setting often starts "What is the capital of France?" in French
            # gibberish; this one answered "The capital of France is Paris." for every seed tried.
            "chat",
            "Sensible replies from a small model: low temperature, narrow nucleus, a mild repetition penalty.",
            DecodingParams(temperature=0.2, top_p=0.5, repetition_penalty=1.1),
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

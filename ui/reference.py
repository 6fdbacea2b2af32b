"""The reference model as the explorer keeps it: the session's choice, what requests carry, and its words.

A `RefChoice` is what the "Reference model" panel applied: the main model in another form (a dtype, int8) or
another model the app can load (a Hugging Face id, a local folder, "embedded"), possibly in a dtype too. While
the session holds one, every request carries its `reference` (ui/request.py), so every answer carries the
reference's probabilities and distances; the session file and the session kept in the browser keep it.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("float32", "bfloat16", "float16")
MAIN_FORMS = (*DTYPES, "int8")  # what the panel offers of the main model: another dtype, or its int8 weights
ANOTHER = "another model"  # the form picker's choice that takes the model box instead
OTHER_ENGINE = "other engine"  # the main model on the engine it does not run on (transformers <-> vLLM)
ENGINES = ("transformers", "vllm")


@dataclass(frozen=True)
class RefChoice:
    """The reference: `model` None is the main model; `dtype` None keeps the model's own; `int8` quantises."""

    model: str | None = None
    dtype: str | None = None
    int8: bool = False
    engine: str | None = None  # None: the main model's own engine

    def request(self) -> dict:
        """The request's `reference` (only the keys set)."""
        quantization = "int8" if self.int8 else None
        out = {"model": self.model, "dtype": self.dtype, "quantization": quantization, "engine": self.engine}
        return {key: value for key, value in out.items() if value is not None}

    def label(self) -> str:
        """The reference in the panel's words: "bfloat16", "int8", "on vllm", "HuggingFaceTB/SmolLM2-360M (float32)"."""
        on = f"on {self.engine}" if self.engine else None
        form = ", ".join(part for part in (self.dtype, "int8" if self.int8 else None, on) if part)
        if self.model is None:
            return form or "the main model"
        return f"{self.model} ({form})" if form else self.model

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: object) -> RefChoice | None:
        """The session file's reference (None when it holds none); ValueError says what is wrong with it."""
        if data is None:
            return None
        if not isinstance(data, dict) or data.get("dtype") not in (None, *DTYPES) or data.get("engine") not in (
            None, *ENGINES
        ):
            raise ValueError(f"the reference in the session file is not one the panel makes: {data}")
        model = data.get("model")
        return cls(str(model) if model else None, data.get("dtype"), bool(data.get("int8")), data.get("engine"))


def picked(form: str | None, model_text: str | None, dtype: str | None, main_engine: str = "transformers") -> RefChoice:
    """The panel's inputs as a reference (`main_engine`: the one the main model runs on); ValueError in the panel's
    words when they name none."""
    if form in MAIN_FORMS:
        return RefChoice(None, None, True) if form == "int8" else RefChoice(None, form)
    if form == OTHER_ENGINE:
        return RefChoice(engine="transformers" if main_engine == "vllm" else "vllm")
    if form != ANOTHER:
        choices = ", ".join((*MAIN_FORMS, OTHER_ENGINE))
        raise ValueError(f"pick what the reference is in “Reference”: {choices} or {ANOTHER}")
    model = (model_text or "").strip()
    if not model:
        raise ValueError("type the reference's model (a Hugging Face id, a local folder or “embedded”) first")
    if dtype not in (None, "", *DTYPES):
        raise ValueError(f"the dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return RefChoice(model, dtype or None)

"""StoreSettings: the typed settings of the model store (model at start, device, device_map, cache folder, engine).

The command line builds one and hands it to `STORE.configure`; until then the store reads the environment
once (`StoreSettings.from_env`), which is how Hugging Face Spaces passes its settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backends.model.devices import device_map_choice, device_name
from backends.settings import BackendSettings

MODEL_ENV = ("LLM_DEMO_DEFAULT_MODEL", "NEXTTOKEN_MODEL")  # the first non-blank one wins


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where converted models live: env NEXTTOKEN_CACHE_DIR, else `nexttoken` in the user's cache folder."""
    env = os.environ if env is None else env
    if env.get("NEXTTOKEN_CACHE_DIR", "").strip():
        return Path(env["NEXTTOKEN_CACHE_DIR"].strip())
    return Path(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "nexttoken"


@dataclass(frozen=True)
class StoreSettings:
    """How the store loads models. `model` None: the embedded model (or a hub model without it).

    `device` is auto, cpu, cuda, cuda:N or mps; `device_map` an accelerate strategy or None for one device.
    `engine`: which engine computes the logits, and how.
    Values are normalised (trimmed, lower case); a bad one raises ValueError naming it.
    """

    model: str | None = None
    device: str = "auto"
    device_map: str | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    engine: BackendSettings = field(default_factory=BackendSettings)

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__, once, so every reader sees the same spelling
        object.__setattr__(self, "model", (self.model or "").strip() or None)
        object.__setattr__(self, "device", device_name(self.device))
        object.__setattr__(self, "device_map", device_map_choice(self.device_map))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        """Settings from LLM_DEMO_DEFAULT_MODEL / NEXTTOKEN_MODEL, NEXTTOKEN_DEVICE, NEXTTOKEN_DEVICE_MAP and
        NEXTTOKEN_CACHE_DIR (None: os.environ)."""
        env = os.environ if env is None else env
        model = next((env[name] for name in MODEL_ENV if env.get(name, "").strip()), None)
        return cls(
            model=model,
            device=env.get("NEXTTOKEN_DEVICE", "").strip() or "auto",
            device_map=env.get("NEXTTOKEN_DEVICE_MAP"),
            cache_dir=default_cache_dir(env),
        )

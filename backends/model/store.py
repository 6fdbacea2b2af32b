"""The one shared model of the process: `STORE` loads, switches and reports on it.

Every use of the model goes through the model lane (decoding/lane.py).

Loading a new model swaps it in only when the load succeeds; a failed load, whatever it raised, leaves the
previous model working and records the reason in the status as one line. A switch drops every value derived
from the old model (see `memo`), so the old model is freed at once, not at the next garbage collection.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import torch

from backends.model import memo
from backends.model.discovery import offline_models
from backends.model.embedded import EMBEDDED_ID, embedded_gguf
from backends.model.loaded import LoadedModel, ModelStatus
from backends.model.loading import describe_load_error, load_model
from backends.model.settings import StoreSettings

HUB_FALLBACK_ID = "Qwen/Qwen2.5-0.5B-Instruct"  # the default model where the embedded one is not installed


class ModelStore:
    """Holds the current model; loads are serialised and a failure keeps the previous model.

    `settings` None: read from the environment on first use (`StoreSettings.from_env`), until `configure`.
    """

    def __init__(self, settings: StoreSettings | None = None) -> None:
        self._lock = threading.RLock()
        self._settings = settings
        self._current: LoadedModel | None = None
        self._status: ModelStatus | None = None  # None until the first load: the status shows the default id

    @property
    def settings(self) -> StoreSettings:
        if self._settings is None:
            self._settings = StoreSettings.from_env()
        return self._settings

    def configure(self, settings: StoreSettings) -> None:
        """Use `settings` from the next load on; a model already loaded stays loaded."""
        with self._lock:
            self._settings = settings

    def default_model_id(self) -> str:
        """The configured model, else the embedded model, else a small hub model."""
        return self.settings.model or (EMBEDDED_ID if embedded_gguf() is not None else HUB_FALLBACK_ID)

    def status(self) -> ModelStatus:
        return self._status or ModelStatus(model_id=self.default_model_id(), engine=self.settings.engine.name)

    def get(self) -> LoadedModel:
        """The current model, loading the default one on first use."""
        if self._current is None:
            with self._lock:
                if self._current is None:
                    self.load(self.default_model_id())
        return self._current

    def load(self, model_id: str, device: str | None = None, device_map: str | None = None) -> ModelStatus:
        """Load `model_id` (device and device_map default to the settings') and make it the current model.

        Any failure raises ValueError with one readable line, also shown as the status's `error`.
        """
        settings = self.settings
        device = device or settings.device
        device_map = settings.device_map if device_map is None else device_map
        with self._lock:
            shown = str(model_id or "").strip()
            self._status = ModelStatus(model_id=shown, state="loading", engine=settings.engine.name)
            try:
                loaded = load_model(model_id, device, device_map, settings.cache_dir, settings.engine)
            except BaseException as exc:  # even an interrupt must not leave the status at "loading"
                self._status = self._failed(model_id, exc)
                if isinstance(exc, ValueError) or not isinstance(exc, Exception):
                    raise
                raise ValueError(self._status.error) from exc
            self.use(loaded)
            return self._status

    def _failed(self, model_id: str, exc: BaseException) -> ModelStatus:
        """The status after a failed load: the previous model's, with the reason as one line."""
        text = str(exc).strip()
        error = text.splitlines()[0] if isinstance(exc, ValueError) and text else describe_load_error(model_id, exc)
        if self._current is None:
            return ModelStatus(model_id=str(model_id or "").strip(), state="error", error=error)
        return replace(self._current.status(), error=error)

    def use(self, loaded: LoadedModel) -> None:
        """Install an already loaded model (tests use tiny random models this way)."""
        with self._lock:
            previous, switched = self._current, self._current is not loaded
            self._current = loaded
            self._status = loaded.status()
        if switched:
            memo.drop()  # engines, trackers, copies and cached keys/values of the old model
            if previous is not None and hasattr(previous.backend, "close"):
                previous.backend.close()  # a vLLM engine's processes and memory
            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()  # hand the old weights' blocks back to the driver


STORE = ModelStore()


def default_model_id() -> str:
    """The model the app starts with (see `ModelStore.default_model_id`)."""
    return STORE.default_model_id()


def available_models() -> list[str]:
    """Models that load without network, as ids ready to paste (the store's cache folder is searched)."""
    return offline_models(STORE.settings.cache_dir)

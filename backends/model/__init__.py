"""The model store: resolve an id, load it, convert the embedded GGUF, place it on devices, report status.

- `settings`: StoreSettings (and BackendSettings), the typed settings the store loads with;
- `embedded`: the GGUF shipped with the app and its one-time conversion;
- `discovery`: resolving ids and listing the models usable offline;
- `devices`: device, dtype and device_map choices;
- `loaded`: LoadedModel and ModelStatus;
- `loading`: loading a model, with readable failures;
- `memo`: values derived from the current model, dropped when it changes;
- `store`: the shared `STORE`.
"""

from backends.model.devices import device_map_choice, pick_device, summarise_device_map
from backends.model.discovery import resolve
from backends.model.embedded import EMBEDDED_ALIASES, EMBEDDED_ID, embedded_gguf
from backends.model.loaded import LoadedModel, ModelStatus
from backends.model.loading import load_model
from backends.model.settings import StoreSettings
from backends.model.store import STORE, ModelStore, available_models, default_model_id

__all__ = [
    "EMBEDDED_ALIASES",
    "EMBEDDED_ID",
    "STORE",
    "LoadedModel",
    "ModelStatus",
    "ModelStore",
    "StoreSettings",
    "available_models",
    "default_model_id",
    "device_map_choice",
    "embedded_gguf",
    "load_model",
    "pick_device",
    "resolve",
    "summarise_device_map",
]

"""Which models there are: resolving a user's id to what to load, and listing the models usable offline."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from backends.model.embedded import (
    EMBEDDED_ALIASES,
    EMBEDDED_ID,
    converted_embedded_folder,
    embedded_folder,
    embedded_gguf,
)
from backends.model.settings import default_cache_dir

HUB_ID_MAX = 96  # the Hub's limit on owner/name
log = logging.getLogger(__name__)


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, its middle cut when long, so a pasted wall of text stays one readable line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit // 2]!r}…{text[-limit // 4 :]!r} ({len(text)} characters)"


def resolve(model_id: str, cache_dir: Path | None = None) -> tuple[str, str]:
    """Map a user's model id to (what to load, source): embedded, local folder or hub. ValueError if none fits.

    `cache_dir` holds the converted embedded model (None: `default_cache_dir()`).
    """
    text = (model_id or "").strip()
    if not text:
        raise ValueError("model id is empty: give a Hugging Face id, a local folder or 'embedded'")
    if text.lower() in EMBEDDED_ALIASES:
        return str(converted_embedded_folder(cache_dir or default_cache_dir())), "embedded"
    path = Path(os.path.expanduser(text))
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ValueError(f"model id {shown(text)} is not a usable folder name ({exc.strerror})") from None
    if exists:
        if not (path / "config.json").is_file():
            raise ValueError(f"folder {shown(text)} has no config.json: it is not a transformers model folder")
        return str(path), "local"
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ValueError(f"model path {shown(text)} does not exist")
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except ValueError:
        raise ValueError(
            f"{shown(text)} is neither a local folder nor a valid Hugging Face model id (owner/name of at most "
            f"{HUB_ID_MAX} letters, digits, '-', '_', '.')"
        ) from None
    return text, "hub"


def offline_models(cache_dir: Path) -> list[str]:
    """Models that load without network, as ids ready to paste: embedded, converted folders, local HF cache."""
    has_embedded = embedded_gguf() is not None or _has_weights(embedded_folder(cache_dir))
    found = [EMBEDDED_ID] if has_embedded else []
    return list(dict.fromkeys([*found, *_converted_folders(cache_dir), *_hub_cache_models()]))


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        f.suffix in {".safetensors", ".bin"} for f in folder.iterdir() if f.is_file()
    )


def _converted_folders(cache_dir: Path) -> list[str]:
    """Model folders under the cache dir, except the embedded copy (its id stands for it)."""
    root = cache_dir / "models"
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [str(p) for p in folders if p != embedded_folder(cache_dir) and _has_weights(p)]


def _is_causal_lm(config_file: Path) -> bool:
    """True unless config.json names architectures and none is a causal LM (cheap, no model code imported)."""
    try:
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return False
    return not architectures or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def _hub_cache_models() -> list[str]:
    """Causal LMs with config and weights in the local Hugging Face cache (env HF_HUB_CACHE read now)."""
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    # constants.HF_HUB_CACHE is frozen at import; the env var may have been set since
    root = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    try:
        info = scan_cache_dir(root)
    except (CacheNotFound, OSError) as exc:
        log.debug("no Hugging Face cache at %s: %s", root, exc)
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            names = {f.file_name for f in revision.files}
            weights = any(n.endswith((".safetensors", ".bin")) for n in names)
            if "config.json" in names and weights and _is_causal_lm(revision.snapshot_path / "config.json"):
                found.append(repo.repo_id)
                break
    return found

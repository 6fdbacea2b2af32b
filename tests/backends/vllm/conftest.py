"""The embedded model on the vLLM engine, started once for the vLLM tests that need it as a main model (a start
costs tens of seconds on a CPU); skipped where vllm is not installed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vllm_embedded():
    pytest.importorskip("vllm")
    from backends.model import EMBEDDED_ID, load_model
    from backends.settings import BackendSettings, VllmOptions

    loaded = load_model(EMBEDDED_ID, device="cpu", engine=BackendSettings("vllm", VllmOptions(enforce_eager=True)))
    yield loaded
    loaded.backend.close()

"""The REST routes on a bare Starlette app (in process, no network), on the embedded model, under small budgets;
and one launched server, as `cli` launches the app, for the modules that call the routes over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import cli
from backends.model import STORE
from bench.harness import free_port
from server import gradio_api, rest
from service.budgets import Budgets
from service.operations import POLICY

APP = Starlette(routes=list(rest.ROUTES))
# Small enough that no accepted request costs more than a few forward passes of the 135M model on two CPUs:
# the fuzzer's requests then take milliseconds each, whatever it generates.
SMALL_BUDGETS = Budgets(
    max_context_tokens=48, max_rows=20, max_attribution_work=96, max_grammar_chars=200, max_stop_sequences=4,
    max_stop_chars=20, max_prompt_chars=200, max_message_chars=200, max_history_turns=4, max_history_chars=400,
    max_reply_tokens=8, max_tree_tokens=600, max_interventions=4, max_patching_cells=60, max_sweep_work=600,
    max_reference_mb=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def client(embedded):
    """A client of the REST routes; public mode (no load but the default model's) with SMALL_BUDGETS."""
    STORE.use(embedded)
    before = POLICY.settings
    POLICY.configure(public=True, budgets=SMALL_BUDGETS)
    try:
        with TestClient(APP) as client:
            yield client
    finally:
        POLICY.configure(before.public, before.allowlist, before.budgets)
        STORE.use(embedded)


@pytest.fixture(scope="session")
def launched_url(embedded) -> Iterator[str]:
    """The Gradio API and the REST routes on one port, launched once for the session, not once per module;
    each module using it puts its own model in the store first."""
    with gr.Blocks() as demo:
        gradio_api.register(demo)
    demo.queue(max_size=16)
    cli.launch(demo, cli.parse_args(["--host", "127.0.0.1", "--port", str(free_port())], {}), prevent_thread_lock=True,
               quiet=True)  # fmt: skip
    try:
        yield demo.local_url.rstrip("/")
    finally:
        demo.close()

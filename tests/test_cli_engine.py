"""The engine flags: --engine and vLLM's parallelism flags, their environment variables (a flag wins), the
refusal of vLLM flags without --engine vllm, and the install hint when vllm is missing."""

from __future__ import annotations

import importlib.util
import logging

import pytest

import cli
from backends import model as model_mod
from backends.settings import BackendSettings, VllmOptions
from service import operations as service


@pytest.fixture
def vllm_installed(monkeypatch):
    """`vllm` looks installed to the command line (the flags are checked, nothing is started)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))


def parse_error(capsys, argv: list[str], env: dict | None = None) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv, env or {})
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_the_default_engine_is_transformers():
    assert cli.parse_args([], {}).engine == BackendSettings()


def test_vllm_flags_reach_the_engine_settings(vllm_installed):
    argv = ["--engine", "VLLM", "--tensor-parallel-size", "4", "--pipeline-parallel-size", "2",
            "--distributed-executor-backend", "ray", "--attribution-copy", "--enforce-eager"]  # fmt: skip
    engine = cli.parse_args(argv, {}).engine
    assert engine == BackendSettings("vllm", VllmOptions(4, 2, "ray", True), attribution_copy=True)


def test_environment_variables_set_the_engine_and_flags_beat_them(vllm_installed):
    env = {"NEXTTOKEN_ENGINE": "vllm", "NEXTTOKEN_TENSOR_PARALLEL_SIZE": "2", "NEXTTOKEN_ATTRIBUTION_COPY": "yes"}
    engine = cli.parse_args([], env).engine
    assert (engine.name, engine.vllm.tensor_parallel_size, engine.attribution_copy) == ("vllm", 2, True)
    engine = cli.parse_args(["--tensor-parallel-size", "8", "--no-attribution-copy"], env).engine
    assert (engine.vllm.tensor_parallel_size, engine.attribution_copy) == (8, False)
    assert cli.parse_args(["--engine", "transformers"], {"NEXTTOKEN_ENGINE": "vllm"}).engine.name == "transformers"


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["--engine", "tgi"], {}, "--engine 'tgi' is not an engine: use one of transformers, vllm"),
        ([], {"NEXTTOKEN_ENGINE": "onnx"}, "NEXTTOKEN_ENGINE 'onnx' is not an engine"),
        (["--engine", "vllm", "--tensor-parallel-size", "0"], {}, "--tensor-parallel-size '0' is not a whole number"),
        (["--engine", "vllm", "--distributed-executor-backend", "slurm"], {}, "'slurm' is not one of mp, ray, uni"),
        (["--tensor-parallel-size", "2"], {}, "--tensor-parallel-size applies to the vLLM engine only: add --engine"),
        (["--attribution-copy"], {}, "--attribution-copy applies to the vLLM engine only"),
    ],
)
def test_bad_engine_flags_are_refused_with_one_line(capsys, vllm_installed, argv, env, words):
    assert words in parse_error(capsys, argv, env)


def test_vllm_missing_is_refused_at_start_with_the_install_command(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    err = parse_error(capsys, ["--engine", "vllm"])
    assert "vllm package is not installed" in err and "uv sync --extra vllm" in err


def test_apply_hands_the_engine_to_the_model_store(monkeypatch, vllm_installed):
    store = model_mod.ModelStore()
    monkeypatch.setattr(model_mod, "STORE", store)
    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)  # apply sets the policy too
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    cli.apply(cli.parse_args(["--engine", "vllm", "--pipeline-parallel-size", "2"], {}))
    assert store.settings.engine == BackendSettings("vllm", VllmOptions(pipeline_parallel_size=2))

"""Command line, offline model list, share-link fallback, public-mode policy, device_map loading, ZeroGPU hook."""

from __future__ import annotations

import json
import logging
import os
import shutil
import types
import urllib.request
from pathlib import Path

import pytest
import torch

import cli
import runtime
from backends import model as model_mod
from service import budgets as budgets_mod
from service import operations as service

MODEL_ENV = ("LLM_DEMO_DEFAULT_MODEL", "NEXTTOKEN_MODEL")


def parse_error(capsys, argv: list[str], env: dict | None = None) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv, env or {})
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def policy(monkeypatch):
    """service.POLICY, restored afterwards; the default model is the built-in one."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)
    return service.POLICY


@pytest.fixture
def no_model(monkeypatch):
    """A store that fails the test if anything tries to load or run a model."""

    class Untouchable:
        def get(self):
            raise AssertionError("the policy should refuse before any model is touched")

        load = get

    monkeypatch.setattr(service, "STORE", Untouchable())


# --- parsing -----------------------------------------------------------------------------------


def test_defaults_without_flags_or_env():
    options = cli.parse_args([], {})
    assert options == cli.Options()
    assert (options.device, options.share, options.public, options.queue_size) == ("auto", False, False, 64)


def test_every_flag():
    argv = "--model org/m --device cpu --host 0.0.0.0 --port 8080 --share --list-models --device-map auto"
    argv += " --log-level debug --allow-models a/b,c/d --max-prompt-chars 500 --queue-size 8"
    options = cli.parse_args(argv.split(), {})
    assert options.model == "org/m"
    assert (options.device, options.host, options.port) == ("cpu", "0.0.0.0", 8080)
    assert options.share and options.public and options.list_models
    assert (options.device_map, options.log_level) == ("auto", "DEBUG")
    assert options.allowlist == ("a/b", "c/d")
    assert (options.budgets.max_prompt_chars, options.queue_size) == (500, 8)


def test_environment_fallbacks():
    env = {
        "NEXTTOKEN_MODEL": "org/fallback",
        "NEXTTOKEN_DEVICE": "CPU",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "7999",
        "GRADIO_SHARE": "true",
        "NEXTTOKEN_DEVICE_MAP": "auto",
        "LLM_DEMO_LOG_LEVEL": "warning",
        "NEXTTOKEN_MODEL_ALLOWLIST": " a/b , ,c/d ",
        "NEXTTOKEN_MAX_PROMPT_CHARS": "1000",
        "NEXTTOKEN_QUEUE_SIZE": "4",
    }
    options = cli.parse_args([], env)
    assert (options.model, options.device, options.host, options.port) == ("org/fallback", "cpu", "0.0.0.0", 7999)
    assert options.share and options.public
    assert (options.device_map, options.log_level, options.allowlist) == ("auto", "WARNING", ("a/b", "c/d"))
    assert (options.budgets.max_prompt_chars, options.queue_size) == (1000, 4)
    assert cli.parse_args([], env | {"LLM_DEMO_DEFAULT_MODEL": "org/first"}).model == "org/first"


def test_flags_beat_environment():
    env = {
        "LLM_DEMO_DEFAULT_MODEL": "org/env",
        "NEXTTOKEN_DEVICE": "mps-not-checked-when-flag-given",
        "GRADIO_SERVER_PORT": "7999",
        "GRADIO_SHARE": "1",
        "NEXTTOKEN_DEVICE_MAP": "auto",
        "LLM_DEMO_LOG_LEVEL": "ERROR",
        "NEXTTOKEN_MODEL_ALLOWLIST": "x/y",
    }
    argv = "--model org/flag --device cpu --port 8000 --no-share --device-map none --log-level info --allow-models a/b"
    options = cli.parse_args(argv.split(), env)
    assert (options.model, options.device, options.port, options.share) == ("org/flag", "cpu", 8000, False)
    assert (options.device_map, options.log_level, options.allowlist) == (None, "INFO", ("a/b",))


def test_public_mode_defaults():
    assert cli.parse_args(["--share"], {}).public
    assert cli.parse_args(["--share"], {}).queue_size == cli.PUBLIC_QUEUE_SIZE
    assert not cli.parse_args(["--share", "--no-public"], {}).public
    assert cli.parse_args(["--public"], {}).public and not cli.parse_args(["--public"], {}).share
    spaces = cli.parse_args(["--share"], {"SPACE_ID": "me/explorer", "GRADIO_SERVER_NAME": "0.0.0.0"})
    assert spaces.on_spaces and spaces.public
    assert cli.launch_kwargs(spaces) == {"server_name": "0.0.0.0", "server_port": None, "share": False}
    assert not cli.parse_args([], {"SPACE_ID": "me/explorer", "NEXTTOKEN_PUBLIC": "no"}).public


def test_budget_flags_and_environment_variables():
    assert cli.parse_args([], {}).budgets == budgets_mod.LOCAL_BUDGETS
    assert cli.parse_args(["--public"], {}).budgets == budgets_mod.PUBLIC_BUDGETS
    argv = [arg for i, limit in enumerate(budgets_mod.LIMITS) for arg in (limit.flag, str(100 + i))]
    options = cli.parse_args(argv, {})
    assert [getattr(options.budgets, limit.name) for limit in budgets_mod.LIMITS] == [
        100 + i for i in range(len(budgets_mod.LIMITS))
    ]
    env = {limit.env: str(200 + i) for i, limit in enumerate(budgets_mod.LIMITS)}
    options = cli.parse_args(["--max-rows", "7"], env)  # the flag beats its variable
    assert options.budgets.max_rows == 7 and options.budgets.max_context_tokens == 200
    public = cli.parse_args(["--public"], {"NEXTTOKEN_MAX_CONTEXT_TOKENS": "512"})
    assert public.budgets == budgets_mod.PUBLIC_BUDGETS.with_limits(max_context_tokens=512)
    assert "--max-context-tokens" in cli.build_parser().format_help()


def test_launch_kwargs():
    options = cli.parse_args(["--host", "0.0.0.0", "--port", "9000", "--share"], {})
    assert cli.launch_kwargs(options) == {"server_name": "0.0.0.0", "server_port": 9000, "share": True}
    assert cli.launch_kwargs(cli.parse_args([], {})) == {"server_name": None, "server_port": None, "share": False}


def test_bad_device_is_an_argparse_error(capsys):
    err = parse_error(capsys, ["--device", "gpu"])
    assert "--device 'gpu' is not a device" in err and "auto, cpu, cuda, cuda:N, mps" in err
    err = parse_error(capsys, [], {"NEXTTOKEN_DEVICE": "tpu"})
    assert "NEXTTOKEN_DEVICE 'tpu'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_refused_at_start(capsys):
    assert "CUDA is not available" in parse_error(capsys, ["--device", "cuda"])


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--port", "0"], {}, "--port '0' is not a whole number of at least 1 and at most 65535"),
        (["--port", "http"], {}, "--port 'http'"),
        ([], {"GRADIO_SERVER_PORT": "99999"}, "GRADIO_SERVER_PORT '99999'"),
        ([], {"GRADIO_SHARE": "maybe"}, "GRADIO_SHARE 'maybe' is not a yes/no value"),
        (["--log-level", "loud"], {}, "--log-level 'loud' is not a log level: use one of DEBUG"),
        (["--device-map", "everywhere"], {}, "device_map 'everywhere' is not one of none, auto"),
        (["--max-prompt-chars", "-5"], {}, "--max-prompt-chars '-5'"),
        (["--max-context-tokens", "0"], {}, "--max-context-tokens '0' is not a whole number of at least 1"),
        ([], {"NEXTTOKEN_MAX_ROWS": "many"}, "NEXTTOKEN_MAX_ROWS 'many' is not a whole number"),
        ([], {"NEXTTOKEN_QUEUE_SIZE": "lots"}, "NEXTTOKEN_QUEUE_SIZE 'lots'"),
    ],
)
def test_bad_values_name_the_value_and_what_is_accepted(capsys, argv, env, expected):
    assert expected in parse_error(capsys, argv, env)


def use_store(monkeypatch, settings: model_mod.StoreSettings) -> model_mod.ModelStore:
    """A fresh shared store for one test (the package's STORE and the one its functions read)."""
    store = model_mod.ModelStore(settings)
    monkeypatch.setattr(model_mod, "STORE", store)
    monkeypatch.setattr(model_mod.store, "STORE", store)
    return store


def test_apply_sets_the_process_defaults(monkeypatch, policy):
    for name in ("NEXTTOKEN_DEVICE", "NEXTTOKEN_DEVICE_MAP", "LLM_DEMO_DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEXTTOKEN_MODEL", "org/from-shell")
    store = use_store(monkeypatch, model_mod.StoreSettings.from_env())
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # basicConfig may add one
    options = cli.parse_args(
        ["--model", "org/chosen", "--device", "cpu", "--public", "--allow-models", "a/b", "--log-level", "debug"], {}
    )
    cli.apply(options)
    assert store.settings == model_mod.StoreSettings(model="org/chosen", device="cpu", device_map=None)
    assert model_mod.default_model_id() == "org/chosen" and store.status().model_id == "org/chosen"
    # typed settings, not the environment: the shell's variables are as they were
    assert [os.environ.get(name) for name in MODEL_ENV] == [None, "org/from-shell"]
    assert "NEXTTOKEN_DEVICE" not in os.environ and "NEXTTOKEN_DEVICE_MAP" not in os.environ
    assert policy.settings == service.PolicySettings(True, ("org/chosen", "a/b"), budgets_mod.PUBLIC_BUDGETS)
    assert root.level == logging.DEBUG


# --- model list --------------------------------------------------------------------------------


def _hub_repo(hub: Path, repo_id: str, files: dict[str, Path | str], kind: str = "models") -> None:
    """A repo in the Hugging Face cache layout: refs/main -> snapshots/<commit>/<files>."""
    repo = hub / f"{kind}--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, snapshot / name)
        else:
            (snapshot / name).write_text(content)


def test_available_models_lists_what_loads_offline(tmp_path, monkeypatch, tiny_folder):
    cache, hub = tmp_path / "cache", tmp_path / "hub"
    use_store(monkeypatch, model_mod.StoreSettings(cache_dir=cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    converted = cache / "models" / "my-model"
    shutil.copytree(tiny_folder, converted)
    (cache / "models" / "no-config").mkdir()
    shutil.copytree(tiny_folder, cache / "models" / ".convert-half-done")
    weights = {"config.json": tiny_folder / "config.json", "model.safetensors": tiny_folder / "model.safetensors"}
    _hub_repo(hub, "test/tiny-llama", weights)
    _hub_repo(hub, "test/bert", {"config.json": json.dumps({"architectures": ["BertModel"]}), "model.safetensors": ""})
    _hub_repo(hub, "test/gguf-only", {"model.Q4_0.gguf": ""})
    _hub_repo(hub, "test/config-only", {"config.json": tiny_folder / "config.json"})
    _hub_repo(hub, "test/data", {"config.json": "{}", "data.bin": ""}, kind="datasets")

    embedded = [model_mod.EMBEDDED_ID] if model_mod.embedded_gguf() else []
    expected = [*embedded, str(converted), "test/tiny-llama"]
    assert model_mod.available_models() == expected
    assert cli.models_text().splitlines() == expected


def test_available_models_without_any_cache(tmp_path, monkeypatch):
    use_store(monkeypatch, model_mod.StoreSettings(cache_dir=tmp_path / "nothing"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub"))
    assert model_mod.available_models() == ([model_mod.EMBEDDED_ID] if model_mod.embedded_gguf() else [])


# --- share link fallback ----------------------------------------------------------------------


class FakeDemo:
    """Records launches; the first share launch fails like a tunnel that cannot be made."""

    local_url = "http://127.0.0.1:7860/"

    def __init__(self, raise_on_share: bool = False) -> None:
        self.raise_on_share = raise_on_share
        self.launches: list[dict] = []
        self.share_url = None
        self.closed = self.blocked = False

    def launch(self, **kwargs):
        self.launches.append(kwargs)
        if kwargs.get("share") and self.raise_on_share:
            raise RuntimeError("Could not get share link from Gradio API Server.")

    def close(self):
        self.closed = True

    def block_thread(self):
        self.blocked = True


def test_share_failure_relaunches_locally(caplog):
    demo = FakeDemo(raise_on_share=True)
    with caplog.at_level(logging.WARNING, logger="cli"):
        cli.launch(demo, cli.parse_args(["--share", "--port", "9000"], {}), css="x")
    assert [k["share"] for k in demo.launches] == [True, False]
    assert demo.launches[1].pop("app_kwargs")["routes"]  # the REST API rides on Gradio's app
    assert demo.launches[1] == {"server_name": None, "server_port": 9000, "share": False, "css": "x",
                                "prevent_thread_lock": True}  # fmt: skip
    assert demo.closed and demo.blocked
    assert "could not create a share link (Could not get share link" in caplog.text
    assert "serving locally only" in caplog.text


def test_share_link_missing_after_launch_is_reported(caplog):
    demo = FakeDemo()
    with caplog.at_level(logging.WARNING, logger="cli"):
        cli.launch(demo, cli.parse_args(["--share"], {}), prevent_thread_lock=True)
    assert len(demo.launches) == 1 and not demo.blocked
    assert f"serving locally only at {FakeDemo.local_url}" in caplog.text


def test_local_launch_failure_is_not_hidden():
    demo = FakeDemo()
    demo.launch = lambda **kwargs: (_ for _ in ()).throw(OSError("port 9000 is in use"))
    with pytest.raises(OSError, match="in use"):
        cli.launch(demo, cli.parse_args(["--port", "9000"], {}))


def test_real_gradio_keeps_serving_without_a_tunnel(monkeypatch, caplog):
    import gradio as gr
    from gradio import networking

    def no_network(**kwargs):
        raise RuntimeError("Could not get share link from Gradio API Server.")

    monkeypatch.setattr(networking, "setup_tunnel", no_network)
    with gr.Blocks(analytics_enabled=False) as demo:
        gr.Markdown("hello")
    try:
        with caplog.at_level(logging.WARNING, logger="cli"):
            cli.launch(
                demo, cli.parse_args(["--share", "--host", "127.0.0.1"], {}), prevent_thread_lock=True, quiet=True
            )
        assert demo.share_url is None
        with urllib.request.urlopen(demo.local_url, timeout=10) as response:
            assert response.status == 200
        assert "serving locally only" in caplog.text
    finally:
        demo.close()


# --- public mode -------------------------------------------------------------------------------


def test_public_mode_refuses_local_paths(policy, no_model, tmp_path, tiny_folder):
    policy.configure(public=True, allowlist=["Qwen/Qwen2.5-0.5B-Instruct"])
    for path in (str(tiny_folder), "./models/x", "/etc", "~/models/llama", "C:\\models\\llama", "a/b/c"):
        with pytest.raises(ValueError, match="is a local path; this public server only loads") as exc:
            service.load_model(path)
        assert repr(path) in str(exc.value) and "'Qwen/Qwen2.5-0.5B-Instruct'" in str(exc.value)


def test_public_mode_refuses_models_outside_the_allowlist(policy, no_model):
    policy.configure(public=True, allowlist=["Qwen/Qwen2.5-0.5B-Instruct"])
    default = model_mod.default_model_id()
    assert policy.settings.allowlist == (default, "Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ValueError, match="is not offered on this public server") as exc:
        service.load_model("meta-llama/Llama-3.1-8B")
    assert "'meta-llama/Llama-3.1-8B'" in str(exc.value)
    assert f"choose one of {default!r}, 'Qwen/Qwen2.5-0.5B-Instruct'" in str(exc.value)
    # allowed ids are loaded in their listed spelling; the embedded aliases count as the embedded id
    assert policy.check_model(" qwen/qwen2.5-0.5b-instruct ") == "Qwen/Qwen2.5-0.5B-Instruct"
    if default == model_mod.EMBEDDED_ID:
        assert policy.check_model("embedded") == model_mod.EMBEDDED_ID
    assert policy.allowed_models() == [default, "Qwen/Qwen2.5-0.5B-Instruct"]


def test_public_mode_caps_prompt_length(policy, no_model):
    policy.configure(public=True, budgets=budgets_mod.PUBLIC_BUDGETS.with_limits(max_prompt_chars=100))
    flag = r"\(--max-prompt-chars / NEXTTOKEN_MAX_PROMPT_CHARS\)"
    with pytest.raises(ValueError, match="prompt is 101 characters; this server allows 100 " + flag):
        service.preview({"prompt": "x" * 101})
    with pytest.raises(ValueError, match="system_prompt is 200 characters"):
        service.step({"prompt": "hi", "system_prompt": "y" * 200})
    with pytest.raises(ValueError, match="force_text is 150 characters"):
        service.step({"prompt": "hi", "force_text": "z" * 150})


def test_policy_settings_are_validated(policy):
    with pytest.raises(ValueError, match="max_prompt_chars 0 is out of range: accepted is a whole number >= 1"):
        policy.configure(public=True, budgets=budgets_mod.PUBLIC_BUDGETS.with_limits(max_prompt_chars=0))
    with pytest.raises(ValueError, match="budgets must be a Budgets, got int"):
        policy.configure(public=True, budgets=100)


def test_spaces_start_in_public_mode(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "me/explorer")
    assert service.Policy().settings.public
    monkeypatch.delenv("SPACE_ID")
    assert not service.Policy().settings.public


def test_private_mode_allows_everything(policy, monkeypatch, tiny, tiny_folder):
    policy.configure(public=False, allowlist=["a/b"])
    assert policy.check_model(str(tiny_folder)) == str(tiny_folder)
    assert policy.check_model("someone/anything") == "someone/anything"
    assert policy.settings.budgets == budgets_mod.LOCAL_BUDGETS
    store = model_mod.ModelStore()
    monkeypatch.setattr(service, "STORE", store)
    status = service.load_model(str(tiny_folder))
    assert (status["source"], status["placement"]) == ("local", "cpu")
    store.use(tiny)
    result = service.preview({"prompt": "a long prompt, longer than ten characters", "use_chat_template": False})
    assert result["prompt_tokens"]


# --- device_map ---------------------------------------------------------------------------------


def test_device_map_auto_loads_a_local_folder(monkeypatch, tiny_folder, tiny):
    from transformers import AutoModelForCausalLM

    seen = []
    original = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    loaded = model_mod.load_model(str(tiny_folder), device="cpu", device_map="auto")
    # everything fits on the CPU: one device, so transformers skips accelerate's hooks
    assert seen == ["auto"]
    assert loaded.placement == "cpu" and loaded.status().placement == "cpu"
    assert loaded.device == torch.device("cpu")
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(loaded.model(ids).logits, tiny.model(ids).logits)
    model_mod.ModelStore(model_mod.StoreSettings(device="cpu", device_map="auto")).load(str(tiny_folder))
    plain = model_mod.load_model(str(tiny_folder), device="cpu")
    assert seen == ["auto", "auto", None] and plain.placement == "cpu"


def test_device_map_choice():
    assert model_mod.device_map_choice(" Auto ") == "auto"
    assert model_mod.device_map_choice("none") is None
    with pytest.raises(ValueError, match="device_map 'everywhere' is not one of none, auto, balanced"):
        model_mod.device_map_choice("everywhere")


def test_placement_of_a_model_split_over_devices(tmp_path, tiny_folder, tiny):
    """A real accelerate dispatch (CPU + disk offload, as a model too big for memory gets) reports both."""
    from transformers import AutoModelForCausalLM

    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk"}
    device_map |= {"model.norm": "disk", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(tiny_folder, device_map=device_map, offload_folder=tmp_path)
    loaded = model_mod.LoadedModel(model, tiny.tokenizer, "split", "local", torch.device("cpu"), key=-2)
    assert loaded.status().placement == "cpu (1 layer), disk (1 layer)"


def test_placement_summary():
    layers = {f"model.layers.{i}": 0 if i < 12 else "cpu" for i in range(30)}
    device_map = {"model.embed_tokens": 0, **layers, "model.norm": "cpu", "lm_head": "cpu"}
    assert model_mod.summarise_device_map(device_map) == "cuda:0 (12 layers), cpu (18 layers)"
    assert model_mod.summarise_device_map({"": "cpu"}) == "cpu"
    assert model_mod.summarise_device_map({"transformer.h.0": 1, "lm_head": "disk"}) == "cuda:1 (1 layer), disk"


# --- ZeroGPU hook -------------------------------------------------------------------------------


def test_gpu_decorator_without_spaces(monkeypatch):
    monkeypatch.setattr(runtime, "spaces", None)

    def fn():
        return 1

    assert runtime.gpu(fn) is fn
    assert runtime.gpu(duration=5)(fn) is fn


def test_gpu_decorator_with_spaces(monkeypatch):
    calls = []

    def fake_gpu(duration):
        calls.append(duration)
        return lambda f: ("wrapped", f)

    monkeypatch.setattr(runtime, "spaces", types.SimpleNamespace(GPU=fake_gpu))

    def fn():
        return 1

    assert runtime.gpu(fn) == ("wrapped", fn)
    assert runtime.gpu(duration=120)(fn) == ("wrapped", fn)
    assert calls == [runtime.DEFAULT_GPU_SECONDS, 120]
    assert runtime.on_spaces({"SPACE_ID": "me/explorer"}) and not runtime.on_spaces({})

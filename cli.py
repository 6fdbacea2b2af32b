"""The command line of `uv run app.py`: flags and their environment variables, and launching Gradio.

`parse_args` turns argv and the environment into `Options` (a flag beats its environment variable),
`apply` makes them the process defaults (model store, device, logging, public-mode policy), and
`launch` starts the server, falling back to local serving when a share link cannot be made.
Nothing here builds the UI; `app.main()` calls these functions.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import cli_values as values
import runtime
from backends import model as model_mod
from backends.lane import LANE
from backends.settings import BACKENDS, EXECUTOR_BACKENDS, BackendSettings, VllmOptions, backend_name
from backends.vllm import backend as vllm_mod
from server import rest
from service import budgets as budgets_mod
from service import operations as service
from service import prefetch as prefetch_mod

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
LOCAL_QUEUE_SIZE = 64
PUBLIC_QUEUE_SIZE = 16  # strangers share one model: a short queue fails fast instead of waiting minutes
PUBLIC_HELP = (
    "allowlisted models only, no local paths, capped prompts (default on with --share and on Spaces) [NEXTTOKEN_PUBLIC]"
)


@dataclass(frozen=True)
class Options:
    """Everything the command line decides; None means "let the library choose"."""

    model: str | None = None
    device: str = "auto"
    host: str | None = None
    port: int | None = None
    share: bool = False
    public: bool = False
    list_models: bool = False
    device_map: str | None = None
    log_level: str = "INFO"
    allowlist: tuple[str, ...] = ()
    budgets: budgets_mod.Budgets = budgets_mod.LOCAL_BUDGETS
    queue_size: int = LOCAL_QUEUE_SIZE
    on_spaces: bool = False
    prefetch: int = prefetch_mod.DEFAULT_COUNT
    engine: BackendSettings = field(default_factory=BackendSettings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Next-token explorer: see how a language model picks its next token.",
        epilog="Each option also reads the environment variable in brackets; the flag wins.",
    )
    add = parser.add_argument
    add(
        "--model",
        metavar="ID",
        help="model at start: hub id, folder or 'embedded' [LLM_DEMO_DEFAULT_MODEL, NEXTTOKEN_MODEL]",
    )
    add("--device", help="auto, cpu, cuda, cuda:N or mps (default auto) [NEXTTOKEN_DEVICE]")
    add("--host", metavar="H", help="address to listen on (default 127.0.0.1; 0.0.0.0: all) [GRADIO_SERVER_NAME]")
    add("--port", metavar="P", help="port (default: the first free one from 7860) [GRADIO_SERVER_PORT]")
    add("--share", action=argparse.BooleanOptionalAction, help="temporary public link; implies --public [GRADIO_SHARE]")
    add("--public", action=argparse.BooleanOptionalAction, help=PUBLIC_HELP)
    add("--list-models", action="store_true", help="print the models usable offline, one id per line, and exit")
    add(
        "--device-map",
        metavar="MAP",
        help="spread a big model: auto, balanced, sequential, none [NEXTTOKEN_DEVICE_MAP]",
    )
    add(
        "--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR, CRITICAL (default INFO) [LLM_DEMO_LOG_LEVEL]"
    )
    add(
        "--allow-models", metavar="IDS", help="public: comma-separated ids callers may load [NEXTTOKEN_MODEL_ALLOWLIST]"
    )
    for limit in budgets_mod.LIMITS:
        add(limit.flag, metavar="N", help=limit.describe())
    add("--queue-size", metavar="N", help="most requests waiting (default 16 public, 64 local) [NEXTTOKEN_QUEUE_SIZE]")
    add(
        "--prefetch",
        metavar="N",
        help=f"next tokens whose distributions are computed while idle (default {prefetch_mod.DEFAULT_COUNT}, "
        f"0 off, at most {prefetch_mod.MAX_COUNT}) [NEXTTOKEN_PREFETCH]",
    )
    _add_engine_flags(add)
    return parser


def _add_engine_flags(add) -> None:
    add("--engine", metavar="NAME", help=f"what computes the logits: {', '.join(BACKENDS)} (default transformers) "
        "[NEXTTOKEN_ENGINE]")  # fmt: skip
    add("--tensor-parallel-size", metavar="N", help="vLLM: GPUs each layer is split over "
        "[NEXTTOKEN_TENSOR_PARALLEL_SIZE]")  # fmt: skip
    add("--pipeline-parallel-size", metavar="N", help="vLLM: stages the layers are split into, e.g. one per machine "
        "[NEXTTOKEN_PIPELINE_PARALLEL_SIZE]")  # fmt: skip
    add("--distributed-executor-backend", metavar="NAME", help=f"vLLM: {', '.join(EXECUTOR_BACKENDS)} "
        "(ray for several machines; default: vLLM's choice) [NEXTTOKEN_DISTRIBUTED_EXECUTOR_BACKEND]")  # fmt: skip
    add("--enforce-eager", action=argparse.BooleanOptionalAction, help="vLLM: no torch.compile or CUDA graphs "
        "(starts faster, runs slower) [NEXTTOKEN_ENFORCE_EAGER]")  # fmt: skip
    add("--attribution-copy", action=argparse.BooleanOptionalAction, help="vLLM: also load a transformers copy, "
        "so attribution and the logit lens work [NEXTTOKEN_ATTRIBUTION_COPY]")  # fmt: skip


def parse_args(argv: list[str] | None, env: Mapping[str, str] | None = None) -> Options:
    """Options from argv (None: sys.argv[1:]) and env (None: os.environ); a bad value exits via argparse."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    try:
        return _options(namespace, os.environ if env is None else env)
    except ValueError as exc:
        parser.error(str(exc))


def _setting(namespace: argparse.Namespace, env: Mapping[str, str], dest: str, *names: str) -> tuple[object, str]:
    """(value, where it came from): the flag if given, else the first non-blank env variable, else (None, "")."""
    flag = getattr(namespace, dest)
    if flag is not None:
        return flag, "--" + dest.replace("_", "-")
    for name in names:
        if env.get(name, "").strip():
            return env[name].strip(), name
    return None, ""


def _options(ns: argparse.Namespace, env: Mapping[str, str]) -> Options:
    def get(dest: str, *names: str) -> tuple[object, str]:
        return _setting(ns, env, dest, *names)

    on_spaces = runtime.on_spaces(env)
    share = values.flag(*get("share", "GRADIO_SHARE"), default=False)
    public = values.flag(*get("public", "NEXTTOKEN_PUBLIC"), default=share or on_spaces)
    model, _ = get("model", "LLM_DEMO_DEFAULT_MODEL", "NEXTTOKEN_MODEL")
    host, _ = get("host", "GRADIO_SERVER_NAME")
    return Options(
        model=model,
        device=_device(*get("device", "NEXTTOKEN_DEVICE")),
        host=host,
        port=values.number(*get("port", "GRADIO_SERVER_PORT"), default=None, high=65535),
        share=share,
        public=public,
        list_models=ns.list_models,
        device_map=_device_map(*get("device_map", "NEXTTOKEN_DEVICE_MAP")),
        log_level=values.log_level(*get("log_level", "LLM_DEMO_LOG_LEVEL")),
        allowlist=values.id_list(get("allow_models", "NEXTTOKEN_MODEL_ALLOWLIST")[0]),
        budgets=_budgets(get, public),
        queue_size=values.number(
            *get("queue_size", "NEXTTOKEN_QUEUE_SIZE"), default=PUBLIC_QUEUE_SIZE if public else LOCAL_QUEUE_SIZE
        ),
        on_spaces=on_spaces,
        prefetch=prefetch_mod.parse_count(*get("prefetch", "NEXTTOKEN_PREFETCH")),
        engine=_engine(get),
    )


def _engine(get) -> BackendSettings:
    """The engine settings; vLLM's flags only with --engine vllm, which needs vllm to be installed."""
    name, source = get("engine", "NEXTTOKEN_ENGINE")
    name = backend_name(name, source)
    given = {
        "tensor_parallel_size": values.number(
            *get("tensor_parallel_size", "NEXTTOKEN_TENSOR_PARALLEL_SIZE"), default=None
        ),
        "pipeline_parallel_size": values.number(
            *get("pipeline_parallel_size", "NEXTTOKEN_PIPELINE_PARALLEL_SIZE"), default=None
        ),
        "distributed_executor_backend": values.choice(
            *get("distributed_executor_backend", "NEXTTOKEN_DISTRIBUTED_EXECUTOR_BACKEND"), EXECUTOR_BACKENDS
        ),
        "enforce_eager": values.flag(*get("enforce_eager", "NEXTTOKEN_ENFORCE_EAGER"), default=False),
        "attribution_copy": values.flag(*get("attribution_copy", "NEXTTOKEN_ATTRIBUTION_COPY"), default=False),
    }
    if name == "transformers":
        for dest, value in given.items():
            if value not in (None, False):
                raise ValueError(f"--{dest.replace('_', '-')} applies to the vLLM engine only: add --engine vllm")
    elif importlib.util.find_spec("vllm") is None:
        raise ValueError(f"{source} 'vllm': the vllm package is not installed: {vllm_mod.INSTALL_HINT}")
    copy = given.pop("attribution_copy")
    options = VllmOptions(**{dest: value for dest, value in given.items() if value is not None})
    return BackendSettings(name, options, copy)


def _device(value: object, source: str) -> str:
    if value is None:
        return "auto"
    device = str(value).lower()
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        raise ValueError(f"{source} {value!r} is not a device: use one of {', '.join(DEVICES)}")
    try:
        model_mod.pick_device(device)  # fail at start, not at the first request
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    return device


def _device_map(value: object, source: str) -> str | None:
    if value is None:
        return None
    try:
        return model_mod.device_map_choice(str(value))
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def _budgets(get, public: bool) -> budgets_mod.Budgets:
    """Each budget from its flag or environment variable, else the default of the mode."""
    base = budgets_mod.Budgets.defaults(public)
    given = {limit.name: values.number(*get(limit.name, limit.env), default=None) for limit in budgets_mod.LIMITS}
    return base.with_limits(**{name: value for name, value in given.items() if value is not None})


def apply(options: Options) -> None:
    """Make the options the process defaults: the model store's settings, logging, the public-mode policy."""
    # options already hold the environment's values where no flag was given
    model_mod.STORE.configure(
        model_mod.StoreSettings(options.model, options.device, options.device_map, engine=options.engine)
    )
    logging.basicConfig(level=options.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(options.log_level)
    settings = service.POLICY.configure(options.public, options.allowlist, options.budgets)
    prefetch_mod.PREFETCH.configure(options.prefetch)
    if settings.public:
        log.info(
            "public mode: models %s, prompts up to %d characters, queue of %d",
            ", ".join(settings.allowlist),
            settings.budgets.max_prompt_chars,
            options.queue_size,
        )


def models_text() -> str:
    """What --list-models prints: one id per line, ready to paste into --model or the UI."""
    return "\n".join(model_mod.available_models())


def launch_kwargs(options: Options) -> dict:
    """server_name, server_port and share for `demo.launch(...)`; None lets Gradio pick its default."""
    # Spaces serves the app itself and ignores share (with a warning): do not ask
    return {"server_name": options.host, "server_port": options.port, "share": options.share and not options.on_spaces}


def launch(demo, options: Options, **extra):
    """`demo.launch(**launch_kwargs(options), **extra)`; without a share link it keeps serving locally and says so.

    Blocks like `demo.launch` unless `prevent_thread_lock=True` is passed. Returns the demo.
    """
    kwargs = launch_kwargs(options) | {"app_kwargs": rest.app_kwargs()} | extra  # the REST API on the same port
    LANE.max_waiting = options.queue_size  # the model lane refuses, like Gradio's queue, beyond this many waiting
    block = not kwargs.pop("prevent_thread_lock", False)
    try:
        demo.launch(**kwargs, prevent_thread_lock=True)
    except Exception as exc:
        if not kwargs.get("share"):
            raise
        log.warning("could not create a share link (%s); serving locally only", exc)
        demo.close()  # frees the port if the server had started before the tunnel failed
        kwargs["share"] = False
        demo.launch(**kwargs, prevent_thread_lock=True)
    if kwargs.get("share") and not getattr(demo, "share_url", None):
        # Gradio prints its own reason and carries on without the tunnel
        log.warning("could not create a share link (no network?); serving locally only at %s", demo.local_url)
    if block:
        demo.block_thread()
    return demo

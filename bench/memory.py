"""Memory across model switches: the process's RSS after each switch between two models of the same size.

Run with `uv run python bench/memory.py` (`--switches N`, default 5; `--model ID` twice to choose the two
models). Prints one markdown table; asserts nothing. By default the two models are the embedded
SmolLM2-135M (float32, about 540 MB) and a random-weight twin of it saved to a temporary folder. Each
model is loaded through the shared store and used the way the app uses it (a constrained preview, which
builds its engine, prefix cache and constraint tracker, and an attention attribution) before the next
switch. No garbage collection is forced: if a switch left the old model reachable only through a
reference cycle, RSS would grow by about one model per switch. Target: RSS after the last switch within
10 % of RSS after the first.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import harness
import psutil

from attribution import attribute
from backends.model import EMBEDDED_ID, STORE, LoadedModel, StoreSettings, resolve
from decoding.engine import engine_for

TARGET = 0.10
CONSTRAINT = {"enabled": True, "type": "regex", "schema": "[A-Za-z ,.]+"}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def random_twin(folder: str, target: Path) -> str:
    """A model with the configuration and tokenizer of `folder` and random weights (same size, other values)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(folder).save_pretrained(target)
    return str(target)


def use(loaded: LoadedModel) -> None:
    """What a session does with a model: a constrained preview and an attention attribution."""
    engine = engine_for(loaded)
    request = engine.request({"prompt": "The weather today is", "use_chat_template": False, "constraint": CONSTRAINT})
    engine.preview(request)
    ids = engine.prompt_ids(request)[0]
    attribute(loaded, ids, ids[-1], "attention")


def measure(models: list[str], switches: int) -> list[tuple[int, str, float]]:
    """(switch, model, RSS in MB) after loading the first model (switch 0) and after each switch."""
    rows = []
    for switch in range(switches + 1):
        model = models[switch % 2]
        STORE.load(model)
        use(STORE.get())
        rows.append((switch, model, rss_mb()))
    return rows


def report(rows: list[tuple[int, str, float]]) -> None:
    base = rows[1][2]
    cells = [
        (switch, model if len(model) <= 40 else "…" + model[-39:], f"{rss:,.0f}",
         f"{(rss - base) / base:+.1%}" if switch else "")
        for switch, model, rss in rows
    ]  # fmt: skip
    harness.print_table(("switch", "model", "RSS (MB)", "vs after switch 1"), cells, "rlrr")
    growth = (rows[-1][2] - base) / base
    verdict = "within" if abs(growth) <= TARGET else "NOT within"
    print(f"\nAfter {len(rows) - 1} switches RSS is {growth:+.1%} from after switch 1: {verdict} {TARGET:.0%}.")


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--switches", type=int, default=5)
    parser.add_argument("--model", action="append", default=[], help="a model id or folder (give two)")
    args = parser.parse_args()
    STORE.configure(StoreSettings(device="cpu"))
    with tempfile.TemporaryDirectory(prefix="nexttoken-bench-") as tmp:
        models = args.model
        if len(models) != 2:
            embedded = resolve(EMBEDDED_ID, STORE.settings.cache_dir)[0]
            # made in a child process, so building it does not count in this process's RSS
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                models = [embedded, pool.submit(random_twin, embedded, Path(tmp) / "random-twin").result()]
        print(f"RSS before loading: {rss_mb():,.0f} MB\n")
        report(measure(models, args.switches))


if __name__ == "__main__":
    main()

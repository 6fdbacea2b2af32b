"""vLLM on CPUs: the settings its CPU backend needs from this app, decided before vLLM starts.

Four things differ from GPUs: the KV cache's size (vLLM would reserve most of the machine's memory), the
KV block size (vLLM caches whole blocks only), how the threads of several workers (tensor or pipeline
parallel ranks) are bound to cores, and a layout the CPU backend cannot run in eager mode. Elsewhere each
function leaves vLLM's defaults alone.
"""

from __future__ import annotations

import glob
import os

CPU_BLOCK_SIZE = 32  # tokens per KV block on CPUs (see `block_size`)
KV_SPACE = "VLLM_CPU_KVCACHE_SPACE"  # vLLM's variable: GiB of KV cache per CPU worker
KV_CACHE_MAX = 4 << 30  # bytes per worker: 90k tokens of the embedded model's keys and values
KV_CACHE_MIN = 256 << 20
BIND = "VLLM_CPU_OMP_THREADS_BIND"  # vLLM's variable: the cores of each local worker, ranks separated by "|"


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def kv_cache_bytes(workers: int) -> int | None:
    """Each CPU worker's KV cache when VLLM_CPU_KVCACHE_SPACE does not size it (None: vLLM decides).

    Left to itself, vLLM's CPU backend reserves 92% of the machine's memory (`gpu_memory_utilization`)
    and refuses to start wherever less than that is free, which is most desktops. Instead each worker
    gets a quarter of the memory free now, shared among the workers, within 256 MiB and 4 GiB.
    """
    if not on_cpu() or os.environ.get(KV_SPACE, "") != "":
        return None
    import psutil

    share = psutil.virtual_memory().available // (4 * workers)
    return max(KV_CACHE_MIN, min(KV_CACHE_MAX, share))


def block_size() -> int | None:
    """The KV block size: vLLM caches whole blocks only, so a step recomputes the tokens after the last full block.

    vLLM's CPU backend defaults to 128-token blocks (a step at 250 tokens would recompute 122 of them);
    32 is the smallest it runs at full speed. Elsewhere vLLM's default (16 on GPUs) stands.
    """
    return CPU_BLOCK_SIZE if on_cpu() else None


def check_eager(pipeline_parallel_size: int, enforce_eager: bool) -> None:
    """ValueError where vLLM's CPU backend would start and then fail at the first step.

    Pipeline stages after the first get their input buffers in vLLM's compile warm-up, which eager mode skips
    (vLLM 0.32: `assert self.intermediate_tensors is not None` kills the engine at the first request).
    """
    if enforce_eager and pipeline_parallel_size > 1 and on_cpu():
        raise ValueError(
            f"pipeline parallel size {pipeline_parallel_size} does not run eagerly on vLLM's CPU backend: "
            "drop --enforce-eager (NEXTTOKEN_ENFORCE_EAGER)"
        )


def bind_workers(workers: int, all_local: bool) -> None:
    """Give each local CPU worker cores of its own where vLLM's automatic binding would refuse to start.

    vLLM binds each worker to a NUMA node of its own and refuses more local workers than nodes (a machine
    with one node runs one). Then this process's cores are split evenly among the workers, in order; an
    explicit VLLM_CPU_OMP_THREADS_BIND is kept.
    """
    if workers == 1 or not all_local or os.environ.get(BIND, "auto") != "auto" or not on_cpu():
        return
    if workers <= len(glob.glob("/sys/devices/system/node/node[0-9]*")):
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < workers:
        raise ValueError(f"{workers} vLLM workers need at least {workers} CPU cores; this app may use {len(cores)}")
    share = len(cores) // workers
    os.environ[BIND] = "|".join(",".join(map(str, cores[i * share : (i + 1) * share])) for i in range(workers))

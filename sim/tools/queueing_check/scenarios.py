"""The check scenarios: one instance (or a few), Poisson arrivals, the ``linear`` cost model, and a token law.

How a token law becomes an M/G/1 service time. With ``max_num_seqs: 1`` a request runs alone: one
prefill iteration, then n − 1 decode iterations, and the next request is admitted at the iteration
boundary where it finishes. With the linear cost (base + P·prompt tokens + D·decoding sequences):

* prompt fixed at 1 token, base 0, P = c + a, D = a  ⇒  S = (c + a) + (n − 1)·a = c + a·n;
* any prompt, base a, P = D = 0                      ⇒  S = n·a (c = 0: every iteration costs a).

``queue_delay_s`` (arrival → first scheduled) is then exactly the FCFS wait in queue E[Wq]. The batching
setups use 1-token requests under the ``static`` scheduler: every batch is one iteration of τ0 + α·b.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

A = 0.01  # seconds per output token in every check (the roofline LLaMA-2-7B/A100 decode step is ~0.0105)
MD1_C, MD1_TOKENS = 0.05, 100  # M/D/1: S = c + a·n = 1.05 s
GEO_MEAN = 200  # mm1-geo: n ~ Geometric(1/200) on {1, 2, ...}
CLIP_N_MAX = 400  # mg1-azure-clip: ~20% of the Azure conversation outputs are cut
BATCH_ALPHA, BATCH_TAU0 = 0.01, 0.05  # batch time τ0 + α·b
FIXED_B = 8  # fixed batching: batch size
DYN_B_MAX = 8  # capped dynamic batching: most requests per batch
MGC_SERVERS = 4
AZURE_TRACE = "azure-conv"

# A tiny inline model and a GPU whose KV cache never binds (the checks must not preempt or reject).
_MODEL: dict[str, Any] = {
    "name": "queueing-check",
    "num_layers": 1,
    "hidden_size": 64,
    "num_heads": 4,
    "num_kv_heads": 4,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 1000,
    "max_context": 1 << 20,
}
_GPU: dict[str, Any] = {
    "name": "queueing-check-gpu",
    "memory_bytes": 10**12,
    "bf16_flops": 1e12,
    "mem_bw": 1e11,
    "intra_node_bw": 1e10,
    "host_link_bw": 1e10,
    "price_per_hour": 1.0,
    "tdp_w": 100,
}
_ONE_AT_A_TIME = {"kind": "fcfs", "max_num_seqs": 1}


@lru_cache(maxsize=1)
def azure_outputs() -> np.ndarray:
    """Output-token counts of the shipped Azure 2023 conversation trace (the population sampled from)."""
    from sim.workload.traces import load_trace, resolve_trace_path

    return load_trace(resolve_trace_path(AZURE_TRACE), "azure").output_tokens


def prompt_one_cost(a: float, c: float) -> dict[str, Any]:
    """Linear cost giving S = c + a·n for a 1-token prompt and n output tokens."""
    return {"kind": "linear", "base_s": 0.0, "per_prefill_token_s": c + a, "per_decode_seq_s": a}


def per_iteration_cost(a: float) -> dict[str, Any]:
    """Linear cost giving S = a·n whatever the prompt: every iteration costs a."""
    return {"kind": "linear", "base_s": a, "per_prefill_token_s": 0.0, "per_decode_seq_s": 0.0}


def check_scenario(
    name: str,
    seed: np.random.SeedSequence,
    workload: dict[str, Any],
    cost: dict[str, Any],
    *,
    scheduler: dict[str, Any] | None = None,
    instances: int = 1,
    router: str = "round_robin",
    **extra: Any,
) -> dict[str, Any]:
    sc: dict[str, Any] = {
        "name": f"check-{name}",
        "seed": int(seed.generate_state(1)[0]),
        "model": _MODEL,
        "hardware": _GPU,
        "workload": workload,
        "cluster": {"instances": instances, "router": {"kind": router}},
        "scheduler": scheduler or _ONE_AT_A_TIME,
        "kv_cache": {"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.0},
        "cost_model": cost,
        "engine": {"fast_forward": True, "timeline_interval_s": 1e12},  # one timeline sample: not needed here
    }
    sc.update(extra)
    return sc


def poisson_workload(lam: float, n: int, lengths: dict[str, Any]) -> dict[str, Any]:
    return {"num_requests": n, "arrival": {"kind": "poisson", "rate": lam}, "lengths": lengths}


def azure_lengths() -> dict[str, Any]:
    return {"kind": "trace", "path": AZURE_TRACE, "format": "azure"}


# mm1-geo: n ~ Geometric(p) on {1, 2, ...}, S = a·n (its moments are in `setups`).
P_GEO = 1.0 / GEO_MEAN


def build_geo(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    """Poisson arrivals and geometric lengths drawn here (no geometric length kind), replayed as a csv trace."""
    s_arr, s_len, s_sc = seed.spawn(3)
    t = np.cumsum(np.random.default_rng(s_arr).exponential(1.0 / lam, n))
    out = np.random.default_rng(s_len).geometric(P_GEO, n)
    path = tmp / "geo.csv"
    np.savetxt(
        path,
        np.column_stack((t, np.ones(n), out)),
        fmt=("%.17g", "%d", "%d"),
        delimiter=",",
        header="arrival_s,prompt_tokens,output_tokens",
        comments="",
    )
    workload = {"arrival": {"kind": "trace", "path": str(path), "format": "csv"}}
    return check_scenario("mm1-geo", s_sc, workload, prompt_one_cost(A, 0.0))


def build_md1(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    lengths = {"kind": "fixed", "prompt": 1, "output": MD1_TOKENS}
    return check_scenario("md1", seed, poisson_workload(lam, n, lengths), prompt_one_cost(A, MD1_C))


def build_azure(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    return check_scenario("mg1-azure", seed, poisson_workload(lam, n, azure_lengths()), per_iteration_cost(A))


def build_azure_clip(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    sc = check_scenario("mg1-azure-clip", seed, poisson_workload(lam, n, azure_lengths()), per_iteration_cost(A))
    sc["admission"] = {"max_tokens": CLIP_N_MAX}
    return sc


def verify_clip(res: Any) -> None:
    out = res.requests["output_tokens"].to_numpy()
    clipped = res.summary["counts"].get("clipped", 0)
    if out.max() > CLIP_N_MAX or clipped == 0:
        raise RuntimeError(
            f"admission.max_tokens={CLIP_N_MAX} was not applied by the engine "
            f"(longest output {int(out.max())}, clipped count {clipped})"
        )


def batch_scheduler(mode: str, b: int | None) -> dict[str, Any]:
    """The `static` scheduler (policies/static.py) in `mode`, batch size `b` (None = unlimited)."""
    size = (1 << 30) if b is None else b
    return {"kind": "static", "mode": mode, "batch_size": size}


def batch_builder(
    name: str, mode: str, b: int | None
) -> Callable[[float, np.random.SeedSequence, int, Path], dict[str, Any]]:
    """1-token prompts and outputs: a batch of b is one prefill iteration costing base τ0 + P·b, P = α."""

    def build(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
        lengths = {"kind": "fixed", "prompt": 1, "output": 1}
        cost = {"kind": "linear", "base_s": BATCH_TAU0, "per_prefill_token_s": BATCH_ALPHA, "per_decode_seq_s": 0.0}
        if mode == "fixed":
            n -= n % FIXED_B  # whole batches only: the flushed remainder would wait differently
        return check_scenario(name, seed, poisson_workload(lam, n, lengths), cost, scheduler=batch_scheduler(mode, b))

    return build


def build_mgc(lam: float, seed: np.random.SeedSequence, n: int, tmp: Path) -> dict[str, Any]:
    return check_scenario(
        "mgc-jsq",
        seed,
        poisson_workload(lam, n, azure_lengths()),
        per_iteration_cost(A),
        instances=MGC_SERVERS,
        router="least_requests",
    )

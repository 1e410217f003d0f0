"""Scenario builders for tests: tiny inline models/GPUs and exact `linear` costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwprofiles import GPUSpec, ModelSpec

# round numbers so cost and memory expectations can be done on paper
PAPER_GPU = GPUSpec(
    name="paper-gpu",
    memory_bytes=80e9,
    bf16_flops=1e15,
    mem_bw=2e12,
    intra_node_bw=1e11,
    host_link_bw=3e10,
    price_per_hour=1.0,
    tdp_w=100,
)
PAPER_MODEL = ModelSpec(
    name="paper-model",
    num_layers=10,
    hidden_size=4096,
    num_heads=32,
    num_kv_heads=8,
    head_dim=128,
    intermediate_size=8192,
    vocab_size=32000,
    max_context=8192,
)

TINY_MODEL = {
    "name": "tiny",
    "num_layers": 2,
    "hidden_size": 64,
    "num_heads": 4,
    "num_kv_heads": 4,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 1000,
    "max_context": 4096,
}
# per token KV bytes = 2 * 2 layers * 4 heads * 16 * 2 bytes = 512; a 16-token block = 8192 bytes


def tiny_gpu(kv_blocks: int, block_size: int = 16) -> dict[str, Any]:
    """A GPU whose memory leaves exactly `kv_blocks` blocks for the tiny model (utilisation 1, no reserve)."""
    from hwprofiles import ModelSpec

    m = ModelSpec(**TINY_MODEL)
    mem = m.weight_bytes(1) + kv_blocks * m.kv_bytes_per_token(1) * block_size
    return {
        "name": "tiny-gpu",
        "memory_bytes": mem,
        "bf16_flops": 1e12,
        "mem_bw": 1e11,
        "intra_node_bw": 1e10,
        "host_link_bw": 1e10,
        "price_per_hour": 1.0,
        "tdp_w": 100,
    }


def write_csv(path: Path, rows: list[tuple[float, int, int]]) -> Path:
    path.write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(f"{a!r},{p},{o}\n" for a, p, o in rows))
    return path


def scenario(
    trace: Path,
    *,
    kv_blocks: int = 10_000,
    scheduler: dict[str, Any] | None = None,
    cost: dict[str, Any] | None = None,
    instances: int = 1,
    router: str = "round_robin",
    fast_forward: bool = True,
    watermark: float = 0.0,
    preemption: str = "recompute",
    system_prompt: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    sc: dict[str, Any] = {
        "name": "test",
        "model": TINY_MODEL,
        "hardware": tiny_gpu(kv_blocks),
        "workload": {"arrival": {"kind": "trace", "path": str(trace), "format": "csv"}},
        "cluster": {"instances": instances, "router": {"kind": router}},
        "scheduler": scheduler or {"kind": "fcfs"},
        "kv_cache": {
            "gpu_memory_utilization": 1.0,
            "reserve_gb": 0.0,
            "watermark": watermark,
            "preemption": preemption,
        },
        "cost_model": cost
        or {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002},
        "engine": {"fast_forward": fast_forward},
    }
    if system_prompt:  # prefix caching with every prompt starting with this many shared tokens
        sc["kv_cache"]["prefix_cache"] = {"system_prompt_tokens": system_prompt}
    sc.update(extra)
    return sc


def same_result(a: Any, b: Any, *, itl: bool = False) -> None:
    """Two runs that must agree bit for bit (fast-forwarded against stepped, onward against replanned):
    requests, timeline, counts, iterations and per-instance totals; with `itl`, the ITL histogram's float
    sums too (the same gaps added in the same order)."""
    import pandas as pd

    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)
    assert a.summary["counts"] == b.summary["counts"]
    assert a.summary["sim"]["iterations"] == b.summary["sim"]["iterations"]
    cols = ["instance", "iterations", "output_tokens", "kv_blocks"]
    pd.testing.assert_frame_equal(a.instances[cols], b.instances[cols], check_exact=True)
    if itl:
        # `repr`: the same floats, bit for bit, and NaN equal to NaN (the compiled core boxes a fresh NaN object)
        assert repr(a.summary["metrics"]["itl_s"]) == repr(b.summary["metrics"]["itl_s"])

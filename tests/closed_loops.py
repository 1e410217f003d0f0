"""Closed-loop scenarios and mean-only observed runs for the fit tests: the shape of an aiconfigurator silicon row
(clients at fixed isl / osl, one mean TTFT and TPOT), built once for every test that fits such rows."""

from __future__ import annotations

from typing import Any

import numpy as np

import sim
from calibrate.observed import ObservedRun


def closed_scenario(
    clients: int,
    isl: int,
    osl: int,
    engine: dict[str, Any],
    cost: dict[str, Any] | None = None,
    model: str = "llama-3.1-8b",
) -> sim.Scenario:
    """`model` (Llama-3.1-8B) on one H100, `clients` closed-loop clients sending 3 x clients fixed-length requests."""
    return sim.load_scenario(
        {
            "name": f"closed-{clients}",
            "seed": 0,
            "model": model,
            "hardware": "h100-sxm",
            "workload": {
                "num_requests": 3 * clients,
                "arrival": {"kind": "closed_loop", "concurrency": clients},
                "lengths": {"kind": "fixed", "prompt": isl, "output": osl},
            },
            "cluster": {"instances": 1, "tp": 1},
            "scheduler": {"kind": "vllm", "max_num_seqs": 256, "max_num_batched_tokens": 8192},
            "serving_engine": engine,
            "cost_model": cost or {"kind": "roofline"},
        }
    )


def means_only(clients: int, isl: int, osl: int, ttft: float, tpot: float) -> ObservedRun:
    """A run known only by its means, as a silicon row is: every request at the mean TTFT and TPOT."""
    n = 3 * clients
    out = np.full(n, osl)
    return ObservedRun(
        f"closed-{clients}", "silicon", np.full(n, isl), out, np.full(n, ttft), ttft + tpot * (out - 1),
        concurrency=clients, means_only=True,
    )  # fmt: skip


def sglang_scenario(
    clients: int, isl: int, osl: int, engine: dict[str, Any], layer_s: float = 0.0, model: str = "llama-3.1-8b"
) -> sim.Scenario:
    """`closed_scenario` on the `sglang` preset with `engine` over it and the roofline's fixed time per layer."""
    cost = {"kind": "roofline", "layer_overhead_s": layer_s}
    return closed_scenario(clients, isl, osl, {"kind": "sglang", **engine}, cost, model=model)


def simulated_pairs(
    loops: tuple[tuple[int, int, int], ...], truth: dict[str, Any], layer_s: float = 0.0, model: str = "llama-3.1-8b"
) -> list[tuple[ObservedRun, sim.Scenario]]:
    """Each closed loop simulated under `truth` (engine terms; `layer_s` per layer per step), read back as a
    means-only run and paired with its preset scenario: rows whose true terms a fit should recover."""
    from calibrate.replay import replay_once

    pairs = []
    for c, isl, osl in loops:
        simd = replay_once(means_only(c, isl, osl, 1.0, 0.01), sglang_scenario(c, isl, osl, truth, layer_s, model))
        run = means_only(c, isl, osl, float(np.nanmean(simd.ttft_s)), float(np.nanmean(simd.tpot_s)))
        pairs.append((run, sglang_scenario(c, isl, osl, {}, model=model)))
    return pairs

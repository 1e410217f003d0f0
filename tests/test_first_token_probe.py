"""benchmarks/coverage_first_token.py: the overlap-admission lag probe and estimate, checked by hand on the linear
cost model (iteration = 0.01 + 0.001/prefill token + 0.002/decoding sequence, tests/helpers.py), and the roofline
recorder against a hand-computed GEMM roof."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

import queueing  # noqa: F401  (the package, before benchmarks/ goes on the path: benchmarks/queueing.py would shadow it)
import sim
from tests.helpers import scenario, write_csv

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load() -> ModuleType:
    """The benchmark module, with benchmarks/coverage.py bound as `coverage` and benchmarks/ on the path only while
    it imports (pytest-cov's `coverage` package and the repository's `queueing` package stay what later tests see)."""
    path = list(sys.path)
    sys.path.insert(0, str(BENCH))
    saved = sys.modules.get("coverage")
    spec = importlib.util.spec_from_file_location("coverage", BENCH / "coverage.py")
    assert spec is not None and spec.loader is not None
    bench_cov = importlib.util.module_from_spec(spec)
    sys.modules["coverage"] = bench_cov
    try:
        spec.loader.exec_module(bench_cov)
        import coverage_first_token as ft

        return ft
    finally:
        sys.path[:] = path
        if saved is not None:
            sys.modules["coverage"] = saved
        else:
            sys.modules.pop("coverage", None)


ft = _load()


def _ttfts(tmp_path: Path, rows: list[tuple[float, int, int]], lag: bool) -> list[float]:
    sc = scenario(write_csv(tmp_path / "w.csv", rows))
    if lag:
        with ft.AdmissionLag():
            res = sim.run(sc)
    else:
        res = sim.run(sc)
    return [float(x) for x in res.requests.sort_values("arrival_s")["ttft_s"]]


def test_prompt_arriving_mid_decode_waits_exactly_one_more_decode_step(tmp_path: Path) -> None:
    """r1 (0 s, 100 tokens, 20 out): prefill 0.01 + 0.1 = 0.110 s, then 1-sequence decode steps of 0.012 s ending
    at 0.122, 0.134, 0.146, 0.158. r2 (0.150 s) arrives during the step ending at 0.158. Without the lag the `fcfs`
    scheduler prefills it next, alone: 0.01 + 0.1 = 0.110 s, first token at 0.268, TTFT 0.118. With the lag the
    plan at 0.158 was made before it came: one more decode step (0.012 s), first token at 0.280, TTFT 0.130. r1
    arrived at an idle instance: no lag."""
    rows = [(0.0, 100, 20), (0.150, 100, 5)]
    off, on = _ttfts(tmp_path, rows, lag=False), _ttfts(tmp_path, rows, lag=True)
    assert off == pytest.approx([0.110, 0.118], abs=1e-9)
    assert on == pytest.approx([0.110, 0.130], abs=1e-9)


def test_prompt_arriving_at_an_idle_instance_has_no_lag(tmp_path: Path) -> None:
    """r1 finishes at 0.110 + 4 x 0.012 = 0.158 s (5 tokens); r2 arrives at 0.5 s on an idle instance: TTFT 0.110
    s either way (an idle engine's loop schedules a new request at once)."""
    rows = [(0.0, 100, 5), (0.5, 100, 5)]
    assert _ttfts(tmp_path, rows, lag=True) == pytest.approx([0.110, 0.110], abs=1e-9)


def test_probe_is_undone_on_exit(tmp_path: Path) -> None:
    """After the `with` block the instance is the model's again: the same run as never patched."""
    rows = [(0.0, 100, 20), (0.150, 100, 5)]
    with ft.AdmissionLag():
        pass
    assert _ttfts(tmp_path, rows, lag=False) == pytest.approx([0.110, 0.118], abs=1e-9)


def test_estimate_adds_one_simulated_decode_step_to_agg_rows_only() -> None:
    """Agg: (100 + 10) / 200 - 1 = -0.45. Disagg: its own error, unchanged."""
    per_row = pd.DataFrame(
        [
            {"mode": "agg", "ttft_ms": 100.0, "tpot_ms": 10.0, "silicon_ttft_ms": 200.0, "ttft_err": -0.5},
            {"mode": "disagg", "ttft_ms": 100.0, "tpot_ms": 10.0, "silicon_ttft_ms": 200.0, "ttft_err": -0.5},
        ]
    )
    t = ft.with_lag(per_row)
    assert t["lag_ttft_err"].tolist() == pytest.approx([-0.45, -0.5])


def test_step_gemms_prices_a_quantised_moe_and_dense_step() -> None:
    """`step_gemms` wraps `StructuredCost.gemm` and must pass through every keyword it takes (`module` on attention
    projections since per-module precision, `group` on experts): each step's GEMMs priced, none below roofline."""
    from sim.cluster.pools import pool_specs
    from sim.config.loading import load_scenario
    from sim.costmodel.structured import StructuredCost

    for model in ("qwen3-30b-a3b", "llama-3.1-8b"):
        spec = {
            "model": model,
            "hardware": "h100-sxm",
            "quantization": {"weights": "fp8", "activations": "fp8"},
            "workload": {
                "arrival": {"kind": "poisson", "rate": 1.0},
                "lengths": {"kind": "fixed", "prompt": 8, "output": 8},
                "num_requests": 1,
            },
        }
        cost = pool_specs(load_scenario(spec))[0].cost
        assert isinstance(cost, StructuredCost)
        got = ft.step_gemms(cost, 1024)
        assert got["step"] > 0 and 0 < got["gemm_share"] < 1 and got["dense_over_roof"] >= 1.0, got
        assert (got["moe_over_roof"] >= 1.0) if model.startswith("qwen3") else math.isnan(got["moe_over_roof"])

"""benchmarks/coverage_recipes_sglang_mem.py: SGLang's KV pool = --mem-fraction-static x memory - weights, with the
fraction from the row's InferenceX recipe or SGLang's default at the row's release, each computed by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_coverage", Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
)
assert _SPEC is not None and _SPEC.loader is not None
cov = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cov)

from coverage_recipes_sglang_mem import default_static, sglang_kv_cache  # noqa: E402  (benchmarks/ on the path)

from hwprofiles import catalog  # noqa: E402
from sim.cluster.pools import PoolSpec, pool_specs  # noqa: E402
from sim.config.scenario import load_scenario  # noqa: E402

H100_MIB = 81559  # nvidia-smi memory.total of an H100 SXM (the catalogue's driver-reported total)
B200_MIB = 183359
DSR1_FP8_B200 = "2026_03_25_deepseek_r1_b200_sxm_sglang_fp8_agg_8192x1024_c512_tp8_0_ep1_0_266"
DSR1_FP8_B200_TP4 = "2026_03_25_deepseek_r1_b200_sxm_sglang_fp8_agg_8192x1024_c32_tp4_0_ep1_0_286"
QWEN_TP1 = "qwen_qwen3_32b_qwen_qwen3_32b_h100_sxm_sglang_agg_2048x512_c16_tp1_epnone_6"  # SGLang 0.5.8.post1
QWEN_TP2 = "qwen_qwen3_32b_qwen_qwen3_32b_h100_sxm_sglang_agg_2048x512_c16_tp2_epnone_45"  # SGLang 0.5.1.post1


def _pool(row: pd.Series) -> PoolSpec:
    lengths = {"kind": "fixed", "prompt": 8, "output": 8}
    wl = {"arrival": {"kind": "poisson", "rate": 1.0}, "num_requests": 1, "lengths": lengths}
    return pool_specs(load_scenario(cov.scenario(row, wl)))[0]


def test_default_heuristic_from_0_5_3_by_hand() -> None:
    # H100, TP 1: 512 + 1.5 x 8192 + 2 x 256 + 1 / 8 x 1024 = 13440 MiB (above the 10 GiB floor)
    assert default_static("0.5.8.post1", H100_MIB, 1) == round((H100_MIB - 13440) / H100_MIB, 3) == 0.835
    # B200, TP 8: 512 + 1.5 x 16384 + 2 x 512 + 1024 = 27136 MiB; an MTP draft adds 2 GiB
    assert default_static("0.5.9", B200_MIB, 8) == round((B200_MIB - 27136) / B200_MIB, 3) == 0.852
    assert default_static("0.5.9", B200_MIB, 8, draft=True) == round((B200_MIB - 29184) / B200_MIB, 3)
    # DP attention over 8 ranks: the chunk is 16384 / 8 = 2048 per rank, + 3 x 512 x 8 + 1.5 x 512 x 8 MiB
    dp = 512 + 1.5 * 2048 + 2 * 512 + 1024 + 3 * 512 * 8 + 1.5 * 512 * 8
    assert default_static("nightly-dev", B200_MIB, 8, dp=8) == round((B200_MIB - dp) / B200_MIB, 3)
    # the 10 GiB floor on a small reserve: H100, TP 1, a 2048-token chunk -> 512 + 3072 + 512 + 128 < 10240
    assert default_static("0.5.8", H100_MIB, 1, chunk=2048) == round((H100_MIB - 10240) / H100_MIB, 3)


def test_default_heuristic_before_0_5_3_is_pr_7054s_table() -> None:
    # H100: (9.5 + tp / 2) GiB; TP 2 -> 10.5 GiB = 10752 MiB; DP attention + 4 GiB
    assert default_static("0.5.1.post1", H100_MIB, 2) == round((H100_MIB - 10752) / H100_MIB, 3) == 0.868
    assert default_static("0.5.1.post1", H100_MIB, 2, dp=2) == round((H100_MIB - 14848) / H100_MIB, 3)
    assert default_static("0.4.9", B200_MIB, 8) == round((B200_MIB - 32768) / B200_MIB, 3)


def test_recipe_fraction_by_tp_and_date(silicon_rows: pd.DataFrame) -> None:
    gpu = catalog.gpu("b200_sxm").memory_bytes
    tp8, tp4 = silicon_rows.loc[DSR1_FP8_B200], silicon_rows.loc[DSR1_FP8_B200_TP4]
    # dsr1_fp8_b200.sh (1d29967c4 on): MEM_FRAC_STATIC=0.82 at TP 8, 0.95 at TP 4
    assert sglang_kv_cache(tp8, gpu, {"tp": 8}, False) == {"gpu_memory_utilization": 0.82, "reserve_gb": 0.0}
    assert sglang_kv_cache(tp4, gpu, {"tp": 4}, False) == {"gpu_memory_utilization": 0.95, "reserve_gb": 0.0}
    early = tp8.copy()  # the same row as if measured before 425f74d51 (2025-09-12): no recipe version read
    early["silicon_data_source"] = str(early["silicon_data_source"]).replace("2026-03-25T16:34:14Z", "2025-09-01")
    assert sglang_kv_cache(early, gpu, {"tp": 8}, False) is None
    trt = tp8.copy()
    trt["backend"] = "trtllm"
    assert sglang_kv_cache(trt, gpu, {"tp": 8}, False) is None


def test_scenario_kv_pool_is_fraction_of_memory_less_weights(
    silicon_rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool servesim builds for the row is exactly 0.82 x memory - weights per GPU (no other reserve), i.e. a
    1.3x smaller pool than coverage.py's former 0.9-of-what-the-weights-leave reading."""
    row = silicon_rows.loc[DSR1_FP8_B200]
    pool = _pool(row)
    cap = pool.capacity
    mem = catalog.gpu("b200_sxm").memory_bytes
    assert cap.usable_bytes_per_gpu == pytest.approx(0.82 * mem - cap.weight_bytes_per_gpu)
    monkeypatch.setattr(cov, "READ_SGLANG_STATIC", False)  # coverage.py's former reading
    old = _pool(row).capacity
    assert old.usable_bytes_per_gpu / cap.usable_bytes_per_gpu > 1.25


def test_gap_analysis_rows_take_the_default_of_their_release(silicon_rows: pd.DataFrame) -> None:
    tp1, tp2 = silicon_rows.loc[QWEN_TP1], silicon_rows.loc[QWEN_TP2]
    mem = catalog.gpu("h100_sxm").memory_bytes
    assert cov.scenario(tp1, {})["kv_cache"] == {"gpu_memory_utilization": 0.835, "reserve_gb": 0.0}
    assert cov.scenario(tp2, {})["kv_cache"] == {"gpu_memory_utilization": 0.868, "reserve_gb": 0.0}
    cap = _pool(tp1).capacity
    # Qwen3-32B bf16 on one H100: 0.835 x 85.5 GB - 65.5 GB of weights ~ 5.9 GB, 256 KiB a token: ~22k tokens,
    # where the former reading (0.97 of the GPU, 15.2 GB) held 57,840
    assert cap.usable_bytes_per_gpu == pytest.approx(0.835 * mem - cap.weight_bytes_per_gpu)
    assert 20_000 < cap.tokens < 24_000

"""benchmarks/coverage_recipes_trt.py: TensorRT-LLM's scheduler knobs as the recipes set them, computed by hand
from each recipe's own arithmetic on hand-picked rows of the shared silicon file (skipped where it is absent)."""

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

from coverage_recipes_trt import _mtp_batch, trtllm_scheduler  # noqa: E402  (benchmarks/ on the path via coverage)


def _sched(r: pd.Series) -> dict | None:
    return trtllm_scheduler(r, cov.concurrency(r), cov._layout(r, moe=True))


def test_deepseek_mtp_row_fits_one_1k_context_beside_its_decodes(silicon_rows: pd.DataFrame) -> None:
    # dsr1_fp4_b200_trt_mtp.sh, no DP: MTP = 3, MAX_BATCH_SIZE = CONC = 128,
    # MAX_NUM_TOKENS = ((3 + 1) * 128 + 1024 + 64 + 63) / 64 * 64 = 1663 // 64 * 64 = 1600
    r = silicon_rows.loc["2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x1024_c128_tp8_0_ep1_0_982"]
    assert _sched(r) == {"kind": "trtllm", "max_batch_size": 128, "max_num_tokens": 1600}


def test_deepseek_without_mtp_before_and_after_the_8192_floor(silicon_rows: pd.DataFrame) -> None:
    # measured 2025-11-02: (16 + 1024 + 64 + 63) / 64 * 64 = 1167 // 64 * 64 = 1152, no floor yet (64af5a771)
    early = silicon_rows.loc["dsr1_h200_trtllm_fp8_agg_1024x8192_c16_cfg83"]
    assert _sched(early) == {"kind": "trtllm", "max_num_tokens": 1152}
    # measured 2026-01-29: (128 + 1024 + 127) // 64 * 64 = 1216, then max(1216, 8192)
    late = silicon_rows.loc["dsr1_b200_trtllm_fp8_agg_1024x1024_c128_cfg75"]
    assert cov.agg_mtp.speculative(late) is None  # simulated without MTP: the non-MTP recipe's arithmetic
    assert _sched(late) == {"kind": "trtllm", "max_num_tokens": 8192}


def test_gpt_oss_llama_and_gap_analysis_rows(silicon_rows: pd.DataFrame) -> None:
    h200 = silicon_rows.loc["2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928"]
    assert _sched(h200) == {"kind": "trtllm", "max_num_tokens": 20000, "max_batch_size": 8}  # --max_batch_size $CONC
    b200 = silicon_rows.loc["2026_04_06_gpt_oss_120b_b200_sxm_trtllm_fp4_agg_1024x1024_c32_tp2_ep1_335"]
    assert _sched(b200) == {"kind": "trtllm", "max_num_tokens": 20000, "max_batch_size": 512}
    llama = silicon_rows.loc["2026_04_06_llama_3_1_70b_h200_sxm_trtllm_fp8_agg_1024x1024_c16_tp4_ep1_732"]
    assert _sched(llama) == {"kind": "trtllm", "max_num_tokens": 16384}


def test_gap_analysis_rows_read_the_generator_only_when_asked(silicon_rows: pd.DataFrame, monkeypatch) -> None:
    import coverage_recipes_trt

    gap = silicon_rows.loc["openai_gpt_oss_120b_openai_gpt_oss_120b_h100_sxm_trtllm_agg_4000x1000_c160_tp4_epnone_5"]
    layout = cov._layout(gap, moe=True)
    # default: nothing records how that campaign deployed, so coverage's scheduler and KV share stay
    assert _sched(gap) is None
    assert coverage_recipes_trt.kv_free_fraction(gap, cov.concurrency(gap), layout) is None
    assert cov.scenario(gap, cov._fixed_workload(1, gap))["scheduler"]["kind"] == "sarathi"
    # on: trtllm.rule@a2d8002, batch 40 < 512 -> max_batch_size 512; max_num_tokens = ceil32(512 + 4000 + 1500) = 6016
    monkeypatch.setattr(coverage_recipes_trt, "READ_GAP_ANALYSIS", True)
    assert _sched(gap) == {"kind": "trtllm", "max_batch_size": 512, "max_num_tokens": 6016}
    assert coverage_recipes_trt.kv_free_fraction(gap, cov.concurrency(gap), layout) == 0.80


def test_rows_without_a_read_recipe_keep_the_harness_scheduler(silicon_rows: pd.DataFrame) -> None:
    gb200 = silicon_rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c512_tp20_ep1_13"]
    assert _sched(gb200) is None
    assert cov.scenario(gb200, cov._fixed_workload(1, gb200))["scheduler"]["kind"] == "sarathi"
    sg = silicon_rows[(silicon_rows["backend"] == "sglang") & (silicon_rows["mode"] == "agg")].iloc[0]
    assert _sched(sg) is None


def test_the_scenario_carries_it_and_the_switch_turns_it_off(silicon_rows: pd.DataFrame, monkeypatch) -> None:
    r = silicon_rows.loc["2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x1024_c128_tp8_0_ep1_0_982"]
    assert cov.scenario(r, cov._fixed_workload(1, r))["scheduler"] == _sched(r)
    assert cov.expressible(r) is None
    monkeypatch.setattr(cov, "READ_TRT_SCHEDULER", False)  # `--no-trt-scheduler`
    assert cov.scenario(r, cov._fixed_workload(1, r))["scheduler"]["kind"] == "sarathi"


@pytest.mark.parametrize(
    ("precision", "measured", "clients", "tp", "expected"),
    [
        ("fp4", "2026-01-20T00:00:00Z", 256, 8, 32),  # bf3456727: CONC / TP
        ("fp4", "2026-02-07T00:00:00Z", 256, 8, 64),  # 0aae52d4c: CONC / 4
        ("fp4", "2026-02-07T00:00:00Z", 2, 8, 2),  # CONC < 4: CONC
        ("fp8", "2026-02-06T00:00:00Z", 256, 8, 32),  # 5d517074c: CONC / 8
        ("fp8", "2026-02-06T00:00:00Z", 4, 8, 4),  # CONC < 8: CONC
    ],
)
def test_mtp_batch_per_rank_follows_the_recipe_version(precision, measured, clients, tp, expected) -> None:
    row = pd.Series({"precision": precision, "system": "b200_sxm", "silicon_data_source": f"measured={measured}"})
    assert _mtp_batch(row, clients, tp, dp=True) == expected
    assert _mtp_batch(row, clients, tp, dp=False) == clients


def test_kv_share_follows_the_recipes(silicon_rows: pd.DataFrame) -> None:
    from coverage_recipes_trt import kv_free_fraction

    def free(rid: str, clients: int | None = None) -> float | None:
        r = silicon_rows.loc[rid]
        return kv_free_fraction(r, clients or cov.concurrency(r), cov._layout(r, moe=True))

    assert free("dsr1_h200_trtllm_fp8_agg_1024x8192_c16_cfg83") == 0.75  # dsr1_fp8_h200_trt_slurm.sh
    assert free("2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x1024_c128_tp8_0_ep1_0_982") == 0.8
    assert free("2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928") == 0.85
    assert free("2026_04_06_llama_3_1_70b_h200_sxm_trtllm_fp8_agg_1024x1024_c16_tp4_ep1_732") is None  # none set
    # ec7bafaae (2026-01-29): 0.7 at 1k/8k from CONC 256; a date-only row of that day ran it
    assert free("dsr1_b200_trtllm_fp8_agg_1024x8192_c128_cfg75", clients=256) == 0.7
    assert free("dsr1_b200_trtllm_fp8_agg_1024x8192_c128_cfg75") == 0.8


def test_memory_fraction_default_is_unchanged_and_a_recipe_share_lowers_it(silicon_rows: pd.DataFrame) -> None:
    from coverage_memory import memory_fraction

    from hwprofiles import catalog

    r = silicon_rows.loc["dsr1_h200_trtllm_fp8_agg_1024x8192_c16_cfg83"]
    model, gpu = catalog.model(r["model_path"]), catalog.gpu(r["system"])
    quant, lay = cov.quantization(r, gpu), [cov._layout(r, moe=True)]
    m = gpu.memory_bytes
    base = memory_fraction("trtllm", model, gpu, quant, lay)
    low = memory_fraction("trtllm", model, gpu, quant, lay, 0.75)
    # u = (w + f (M - w)) / M, so the KV room u M - w = f (M - w) scales with f exactly
    w = (0.9 * m - base * m) / (0.9 - 1.0)
    assert low * m - w == pytest.approx(0.75 / 0.9 * (base * m - w), rel=1e-9)
    assert memory_fraction("vllm", model, gpu, quant, lay, 0.75) == 0.9


def _at(row: pd.Series, source: str) -> pd.Series:
    r = row.copy()
    r["silicon_data_source"] = source
    return r


def test_in_force_by_timestamp_or_by_day_for_date_only_rows(silicon_rows: pd.DataFrame) -> None:
    from coverage_recipes import in_force

    row = silicon_rows.loc["dsr1_h200_trtllm_fp8_agg_1024x8192_c16_cfg83"]
    commit = "2026-02-05T19:55:01Z"  # 5d517074c
    assert not in_force(_at(row, "measured=2026-02-05T19:55:00Z; wip=False"), commit)  # one second before
    assert in_force(_at(row, "measured=2026-02-05T19:55:01Z; wip=False"), commit)  # at the commit's second
    assert in_force(_at(row, "db-dump/x; measured=2026-02-05T00:00:00.000Z; run=1"), commit)  # same day, date only
    assert not in_force(_at(row, "db-dump/x; measured=2026-02-04T00:00:00.000Z; run=1"), commit)
    assert not in_force(_at(row, "db-dump/x; run=1"), commit)  # no date: before every commit


def test_the_8192_floor_is_read_by_timestamp_like_the_other_commits(silicon_rows: pd.DataFrame) -> None:
    # 64af5a771 was committed 2026-01-21T23:05:08Z: a run timestamped that morning used the recipe before it,
    # ceil64(16 + 1024 + 64) = 1152; one on that date in the db dump (date only) counts as after: max(1152, 8192).
    row = silicon_rows.loc["dsr1_h200_trtllm_fp8_agg_1024x8192_c16_cfg83"]
    morning = _at(row, "measured=2026-01-21T10:00:00Z; wip=False")
    assert _sched(morning) == {"kind": "trtllm", "max_num_tokens": 1152}
    dump = _at(row, "db-dump/x; measured=2026-01-21T00:00:00.000Z; run=1")
    assert _sched(dump) == {"kind": "trtllm", "max_num_tokens": 8192}

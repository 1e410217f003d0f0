"""benchmarks/coverage_gpu_total.py: agg export rows whose tp_size is a disaggregated deployment's GPU total,
checked against the cited configuration items by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage_gpu_total as gt


@pytest.fixture
def rows(silicon_rows: pd.DataFrame) -> pd.DataFrame:
    return silicon_rows  # read once per session (tests/conftest.py)


def test_gb200_tp36_row_is_one_prefill_and_four_decode_workers(rows: pd.DataFrame) -> None:
    """`..._agg_1024x1024_c32_tp36_ep1_11` (measured 2025-11-17): dsr1-fp4-gb200-dynamo-trt, first listed at
    93e1b3ca1 (2025-12-05); its items of 1 prefill worker TP 4 / EP 4 and 4 decode workers TP 8 / EP 8 total
    1 x 4 + 4 x 8 = 36 GPUs, the row's tp_size. The client drives listed concurrency x decode workers (Dynamo's
    bench.sh), so c32 = 4 x 8, and 8 is in both the MTP item's list (1, 2, 4, 8, 16, 36) and the non-MTP one's
    (1, 2, 4, 8, 16, 32, 64, 141): `config, MTP?`. c128 = 4 x 32 is only the non-MTP item's: `config`, with its
    `DECODE_MAX_BATCH_SIZE=128`; c144 = 4 x 36 only the MTP item's (`DECODE_MTP_SIZE=3`)."""
    d = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c32_tp36_ep1_11"])
    assert d is not None and d.group == "config, MTP?"
    assert d.pools == {
        "prefill": {"instances": 1, "tp": 4, "ep": 4, "moe_tp": 1},
        "decode": {"instances": 4, "tp": 8, "ep": 8, "moe_tp": 1},
    }
    assert "@93e1b3ca1 (first listed 2025-12-05, run measured 2025-11-17)" in d.cite
    d128 = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c128_tp36_ep1_34"])
    assert d128 is not None and d128.group == "config" and d128.decode_batch == 128
    assert d128.pools["decode"]["instances"] == 4
    d144 = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c144_tp36_ep1_26"])
    assert d144 is not None and d144.group == "config, MTP" and d144.mtp == 3


def test_concurrency_is_listed_times_decode_workers(rows: pd.DataFrame) -> None:
    """The 8k/1k tp28 rows: 1 prefill TP 4 + 3 decode workers TEP 8 = 28 GPUs; c54 = 3 x 18 (only the MTP item
    lists 18), c102 = 3 x 34 (only the non-MTP item lists 34), c48 = 3 x 16 (only the non-MTP item lists 16).
    Read as the listed value itself, none of them would match an item."""
    d54 = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_8192x1024_c54_tp28_ep1_120"])
    assert d54 is not None and d54.group == "config, MTP" and d54.mtp == 3
    assert d54.pools["decode"] == {"instances": 3, "tp": 8, "ep": 8, "moe_tp": 1}
    d102 = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_8192x1024_c102_tp28_ep1_126"])
    assert d102 is not None and d102.group == "config" and d102.decode_batch == 32
    d48 = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_8192x1024_c48_tp28_ep1_129"])
    assert d48 is not None and d48.group == "config"


def test_h200_tp64_rows_stay_one_node_slips(rows: pd.DataFrame) -> None:
    """The H200 `..._tp8_ep8_` rows stored as tp_size 64 (coverage_layout's square slip) are not read as GPU
    totals: c4 and c32 are not multiples of the 7 / 5 decode workers the matching-total items name."""
    for rid in (
        "2026_04_06_deepseek_r1_h200_sxm_trtllm_fp8_agg_8192x1024_c4_tp8_ep8_947",
        "2026_04_06_deepseek_r1_h200_sxm_trtllm_fp8_agg_8192x1024_c32_tp8_ep8_964",
    ):
        assert gt.reading(rows.loc[rid]) is None


def test_coverage_simulates_the_reading(rows: pd.DataFrame) -> None:
    """coverage.py turns a read row into a disagg row whose deployment is the reading, groups it by it, and
    builds the disagg scenario (4 decode workers TP 8 behind 1 prefill worker); other rows pass unchanged."""
    import coverage as cov

    row = rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c128_tp36_ep1_34"]
    r = gt.as_disagg(row)
    assert r["mode"] == "disagg" and row["mode"] == "agg"  # a copy
    assert gt.deployment(r) == gt.reading(row)
    assert cov.group(row) == "config"
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["cluster"]["decode"]["instances"] == 4 and sc["cluster"]["decode"]["tp"] == 8
    assert sc["cluster"]["prefill"]["instances"] == 1 and sc["cluster"]["prefill"]["tp"] == 4
    assert sc["cluster"]["decode"]["scheduler"]["max_num_seqs"] == 128  # DECODE_MAX_BATCH_SIZE
    other = rows.loc["2026_04_06_deepseek_r1_gb200_sglang_fp8_agg_1024x1024_c2048_tp72_ep1_46"]
    assert gt.as_disagg(other) is other
    gt.READ_GPU_TOTAL = False
    try:
        assert gt.as_disagg(row) is row and cov.group(row) != "config"
    finally:
        gt.READ_GPU_TOTAL = True


def test_tp20_row_runs_dp_attention_pools_with_mtp(rows: pd.DataFrame) -> None:
    """`..._c512_tp20_ep1_13`: the MTP item at conc 512 (and 1075), prefill 1 x DEP 4, decode 1 x DEP 16: 20 GPUs;
    the item sets `DECODE_MTP_SIZE=3`, so 3 draft tokens. (The other MTP item at conc 512, decode DEP 32, totals
    36 GPUs: the tp36 row's.)"""
    d = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c512_tp20_ep1_13"])
    assert d is not None and d.spec == "mtp" and d.mtp == 3 and d.group == "config, MTP"
    assert d.pools["prefill"] == {"instances": 1, "tp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}
    assert d.pools["decode"] == {"instances": 1, "tp": 1, "attention_dp": 16, "ep": 16, "moe_tp": 1}
    total = sum(p["instances"] * p["tp"] * p.get("attention_dp", 1) for p in d.pools.values())
    assert total == 20


def test_rows_that_are_not_read(rows: pd.DataFrame) -> None:
    """A one-node agg row, a disagg row, and the GB200 SGLang tp 72 rows: that entry was in force at the run with
    node-count placeholders, so its later items are not read back onto the run."""
    agg8 = rows[(rows["mode"] == "agg") & (rows["tp_size"] == 8)].iloc[0]
    assert gt.reading(agg8) is None
    assert gt.reading(rows[rows["mode"] == "disagg"].iloc[0]) is None
    assert gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_sglang_fp8_agg_1024x1024_c2048_tp72_ep1_46"]) is None


def test_validation_replays_the_reading(rows: pd.DataFrame) -> None:
    """benchmarks/validation_silicon.py replays a read row as coverage.py simulates it: the disaggregated deployment
    its GPU total names (1 prefill worker TP 4, 4 decode workers TP 8) and listed x decode-worker clients, not one
    agg instance at TP 36."""
    from benchmarks import validation_silicon as vs

    row = rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c128_tp36_ep1_34"]
    sc, why = vs.scenario_for(row)
    assert sc is not None, why
    pools = {p.role: p for p in vs.pool_specs(sc)}
    assert set(pools) == {"prefill", "decode"}
    assert (pools["decode"].instances, pools["decode"].tp) == (4, 8)
    assert (pools["prefill"].instances, pools["prefill"].tp) == (1, 4)
    assert getattr(sc.workload.arrival, "concurrency", None) == 128  # listed 32 x 4 decode workers
    assert vs.observed_row(row, sc).concurrency == 128

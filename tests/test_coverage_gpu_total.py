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
    93e1b3ca1 (2025-12-05), the non-MTP item at conc 32 runs 1 prefill worker TP 4 / EP 4 and 4 decode workers
    TP 8 / EP 8: 1 x 4 + 4 x 8 = 36 GPUs, the row's tp_size. Conc 32 is not in the MTP item's list (1, 2, 4, 8,
    16, 36), so the reading is `config` without MTP; conc 16 is in both: `config, MTP?`."""
    d = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c32_tp36_ep1_11"])
    assert d is not None and d.group == "config"
    assert d.pools == {
        "prefill": {"instances": 1, "tp": 4, "ep": 4, "moe_tp": 1},
        "decode": {"instances": 4, "tp": 8, "ep": 8, "moe_tp": 1},
    }
    assert "@93e1b3ca1 (first listed 2025-12-05, run measured 2025-11-17)" in d.cite
    d16 = gt.reading(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c16_tp36_ep1_12"])
    assert d16 is not None and d16.group == "config, MTP?"


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

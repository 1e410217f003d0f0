"""benchmarks/tpot_moe_backend.py: the MoE backend each TensorRT-LLM DeepSeek-R1 row's recipe selected, by hand
from the recipe facts in its docstring (attention DP, precision, GPU, measurement date)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_moe_backend as mb

CASES = {
    # fp4 B200 with attention DP 8 (layout tp8 ep8 read as DP): CUTLASS; without DP: TRTLLM
    "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp8_ep8_969": "CUTLASS",
    "2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x1024_c32_tp8_0_ep8_0_973": "TRTLLM",
    # fp8 B200 TP 4, measured after 2026-01-29: TRTLLM
    "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_8192x1024_c16_tp4_ep1_1275": "TRTLLM",
    # fp8 H200: CUTLASS throughout
    "dsr1_h200_trtllm_fp8_agg_1024x1024_c32_cfg181": "CUTLASS",
    # not a TensorRT-LLM DeepSeek agg row: not read
    "2026_03_25_deepseek_r1_gb300_trtllm_fp4_disagg_8192x1024_c5_tp2_0_ep2_0_1130": None,
    "2026_04_06_gpt_oss_120b_b200_sxm_trtllm_fp4_agg_1024x8192_c32_tp2_ep1_244": None,
}


def test_backend_by_recipe(silicon_rows: pd.DataFrame) -> None:
    for rid, want in CASES.items():
        assert mb.backend(silicon_rows.loc[rid]) == want, rid


def test_fp8_b200_before_the_trtllm_switch_ran_deepgemm(silicon_rows: pd.DataFrame) -> None:
    row = silicon_rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_8192x1024_c32_tp8_ep8_970"].copy()
    assert mb.backend(row) == "DEEPGEMM"
    src = str(row["silicon_data_source"])
    assert "measured=" in src and mb.measured_date(row) < "2026-01-29"

"""benchmarks/mtp_k12_check.py: the non-MTP twin of a k = 1 MTP row, found by hand in the silicon file."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import mtp_k12_check as chk

MTP = "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x8192_c128_tp8_ep8_972"
SAME_RUN = "2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x8192_c128_tp8_0_ep8_0_986"
TWIN = "2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x8192_c128_tp8_0_ep8_0_1088"


def test_twin_is_the_other_measurement_of_the_same_deployment(silicon_rows: pd.DataFrame) -> None:
    """DeepSeek-R1 NVFP4 on 8 B200, TensorRT-LLM attention DP 8 / EP 8, 128 clients, 1024 / 8192: the 04-06
    export's MTP run (11.67 ms) is also in the 03-25 export (row 986, the same 11.67 ms: one run exported twice,
    not a twin); row 1088 of the 03-25 export measured the same deployment at 19.23 ms. Rows of another
    layout (tp 8 without attention DP, tp 4) or another precision at the same load are not twins."""
    rows = silicon_rows
    assert rows.loc[SAME_RUN, "silicon_tpot_ms"] == rows.loc[MTP, "silicon_tpot_ms"]
    tw = chk.twins(rows, rows.loc[MTP])
    assert [i for i, _ in tw] == [TWIN]
    assert tw[0][1] == rows.loc[TWIN, "silicon_tpot_ms"]
    assert 19.2 < tw[0][1] < 19.3

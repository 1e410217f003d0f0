"""benchmarks/tpot_mtp_split.py: the draft length and attention DP it reads for MTP rows, checked by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_mtp_split as ms


def _row(rows: pd.DataFrame, prefix: str) -> pd.Series:
    return rows.loc[next(i for i in rows.index if str(i).startswith(prefix))]


def test_draft_length_and_dp_of_mtp_rows(silicon_rows: pd.DataFrame) -> None:
    """B200 FP8 TP 8 without DP at c16: `dsr1_fp8_b200_trt_mtp.sh` sets MTP=3; B200 FP4 DEP 4 at c256: MTP=1 with
    DP attention; the GB200 c512 tp20 row reads as a disagg DEP-16 decode pool with DECODE_MTP_SIZE=3; a row
    without MTP gives None."""
    rows = silicon_rows
    assert ms._mtp(_row(rows, "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_1024x1024_c16_tp8_ep1_2")) == (3, False)
    assert ms._mtp(_row(rows, "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4")) == (1, True)
    assert ms._mtp(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c512_tp20_ep1_13"]) == (3, True)
    assert ms._mtp(rows.loc["2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c128_tp36_ep1_34"]) is None

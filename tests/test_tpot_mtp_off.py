"""benchmarks/tpot_mtp_off.py: which rows it simulates, and that its second run has no speculative decoding."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_mtp_off as mo

C256 = "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4"  # MTP k = 1, 256 clients
C16 = "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_1024x1024_c16_tp8_ep1_2"  # MTP k = 3, 16 clients
C512 = "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c512_tp20_ep1_13"  # MTP k = 3, 512 clients
NO_MTP = "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c128_tp36_ep1_34"  # 128 clients, no MTP


def _id(rows: pd.DataFrame, prefix: str) -> str:
    return str(next(i for i in rows.index if str(i).startswith(prefix)))


def test_rows_split_by_load_and_mtp(silicon_rows: pd.DataFrame, tmp_path: Path) -> None:
    """A results file with an MTP row at 256 clients, one at 16 and a non-MTP row at 128: the large-batch pass
    takes only the first, `--small` only the second; a repeated id is taken once; rows without a TPOT error
    are skipped."""
    ids = [_id(silicon_rows, C256), _id(silicon_rows, C16), NO_MTP]
    per_row = [{"id": i, "tpot_err": -0.2} for i in ids] + [{"id": ids[0], "tpot_err": -0.2}]
    per_row.insert(0, {"id": C512, "tpot_err": None})
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"errors": {"per_row": per_row}}))
    assert mo.rows([path], silicon_rows) == [ids[0]]
    assert mo.rows([path], silicon_rows, large=False) == [ids[1]]


def test_without_mtp_drops_only_the_speculative_block() -> None:
    seen: list[dict[str, Any]] = []
    run = mo.without_mtp(lambda sc: seen.append(sc) or pd.DataFrame())
    run({"model": "m", "speculative": {"kind": "mtp", "num_tokens": 3}, "cluster": {"tp": 8}})
    assert seen == [{"model": "m", "cluster": {"tp": 8}}]

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

    def fake(sc: dict[str, Any]) -> pd.DataFrame:
        seen.append(sc)
        return pd.DataFrame()

    run = mo.without_mtp(fake)
    run({"model": "m", "speculative": {"kind": "mtp", "num_tokens": 3}, "cluster": {"tp": 8}})
    assert seen == [{"model": "m", "cluster": {"tp": 8}}]


def test_per_rank_load(silicon_rows: pd.DataFrame) -> None:
    """B200 DEP 4 at c256 (MTP 1): 64 clients a rank; GB200 c512 tp20 (one DEP-16 decode worker, MTP 3): 32;
    GB200 c128 tp36 (4 decode workers TP 8, no MTP): 32; B200 TP 8 at c16 (MTP 3): 16."""
    assert mo.per_rank(silicon_rows.loc[_id(silicon_rows, C256)]) == (1, 64.0)
    assert mo.per_rank(silicon_rows.loc[C512]) == (3, 32.0)
    assert mo.per_rank(silicon_rows.loc[NO_MTP]) == (0, 32.0)
    assert mo.per_rank(silicon_rows.loc[_id(silicon_rows, C16)]) == (3, 16.0)


def test_rank_table_buckets_by_verified_tokens(silicon_rows: pd.DataFrame, tmp_path: Path) -> None:
    """c256 DEP 4 MTP 1 verifies 64 x 2 = 128 tokens a rank (bucket (64, 128]); c512 tp20 MTP 3 32 x 4 = 128
    too; c128 tp36 without MTP 32 (bucket (16, 64]): medians per bucket."""
    per_row = [
        {"id": _id(silicon_rows, C256), "tpot_err": -0.3},
        {"id": C512, "tpot_err": -0.1},
        {"id": NO_MTP, "tpot_err": 0.05},
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(per_row))
    t = mo.rank_table([path], silicon_rows)
    assert [(m, str(b)) for m, b in t.index] == [(False, "(16, 64]"), (True, "(64, 128]")]
    assert t["count"].tolist() == [1, 2]
    assert t["median"].tolist() == [0.05, -0.2]

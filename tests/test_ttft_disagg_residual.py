"""benchmarks/ttft_disagg_residual.py: the rows it reads and the candidates' covariates, by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

import queueing  # noqa: F401  the package first: once benchmarks/ leads sys.path, its queueing.py would shadow it

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ttft_disagg_recipes as tdr
import ttft_disagg_residual as res

OOS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "coverage_disagg_oos49_s13-dis_results.json"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    if not (res.CSV.exists() and OOS.exists() and tdr.TABLE.exists()):
        pytest.skip("shared silicon_sample.csv or the s13-dis results absent")
    return res.residual_table(OOS).set_index("id")


def test_rows_with_room_and_covariates_by_hand(table: pd.DataFrame) -> None:
    assert len(table) == 25  # s13-dis's "pool has slots for all" split of the same 49 rows
    r = table.loc["dsr1_gb200_trtllm_fp4_disagg_1024x8192_c7_cfg423"]
    assert r["kv_nic_ms"] == pytest.approx(1024 * 35136 / 50e9 * 1e3)  # 0.72 ms: 1,024 tokens of 35,136 B at 50 GB/s
    assert r["prefill_load"] == pytest.approx(7 * 1024 / (1 * 8192))  # 7 clients, one prefill worker
    assert r["miss_ms"] == pytest.approx(r["measured_ms"] - r["sim_ms"])


def test_fill_table_orders_the_pool_full_rows_last() -> None:
    if not (res.CSV.exists() and tdr.TABLE.exists()):
        pytest.skip("shared silicon_sample.csv absent")
    t = res.fill_table().reset_index()
    assert set(t["osl"]) <= {1024, 8192} and t["rows"].sum() > 200
    full = t[t["fill"].astype(str) == "(0.99, 1.0]"]
    assert len(full) >= 1 and (full["rows"] > 10).all()

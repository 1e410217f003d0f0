"""benchmarks/coverage.py turns silicon rows into scenarios: layouts, precision and concurrency as the
rows mean them (checked on hand-picked rows of the shared file; skipped where it is not present)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

# loaded under its own name: `coverage` is also the coverage.py package pytest-cov imports
_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_coverage", Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
)
assert _SPEC is not None and _SPEC.loader is not None
cov = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cov)

pytestmark = pytest.mark.skipif(not cov.CSV.exists(), reason="shared silicon_sample.csv not present")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(cov.CSV).set_index("id", drop=False)


def test_agg_dp_ep_row(rows: pd.DataFrame) -> None:
    r = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"]
    assert cov.concurrency(r) == 256  # batch_size 16 per rank x 16 attention-DP ranks
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["cluster"] == {"tp": 1, "attention_dp": 16, "ep": 4, "moe_tp": 4}
    assert sc["quantization"] == {"weights": "fp4", "activations": "fp4", "kv_cache": "fp8"}
    assert cov.expressible(r) is None


def test_disagg_row_has_per_pool_layouts(rows: pd.DataFrame) -> None:
    r = rows[(rows["mode"] == "disagg") & (rows["prefill_attention_dp_size"] > 1)].iloc[0]
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    pre, dec = sc["cluster"]["prefill"], sc["cluster"]["decode"]
    assert pre["instances"] == int(r["prefill_num_workers"]) and dec["instances"] == int(r["decode_num_workers"])
    assert pre["attention_dp"] == int(r["prefill_attention_dp_size"])
    assert cov.expressible(r) is None


def test_dense_rows_ignore_moe_columns(rows: pd.DataFrame) -> None:
    r = rows[(rows["model_path"] == "Qwen/Qwen3-32B") & (rows["mode"] == "agg")].iloc[0]
    assert set(cov.scenario(r, cov._fixed_workload(1, r))["cluster"]) <= {"tp", "attention_dp"}

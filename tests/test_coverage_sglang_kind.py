"""benchmarks/coverage.py runs SGLang rows on the `sglang` scheduler kind (policies/sglang.py) with the numbers the
`sarathi` reading had (branch s15-sglang); `--no-sglang-kind` keeps that older reading (skipped without the shared
silicon file)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

import sim

_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_coverage_sgl", Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
)
assert _SPEC is not None and _SPEC.loader is not None
cov = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cov)

pytestmark = pytest.mark.skipif(not cov.CSV.exists(), reason="shared silicon_sample.csv not present")

AGG = "2026_04_06_deepseek_r1_h200_sxm_sglang_fp8_agg_1024x1024_c64_tp8_ep1_100"
DISAGG = "dsr1_gb200_sglang_fp4_disagg_1024x1024_c32_cfg486"
TRT = "2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"


def test_sglang_kind_carries_the_sarathi_numbers() -> None:
    s = {"kind": "sarathi", "max_num_seqs": 300, "token_budget": 4096}
    assert cov.sglang_kind(s) == {"kind": "sglang", "chunked_prefill_size": 4096, "max_running_requests": 300}
    assert cov.sglang_kind({"kind": "trtllm", "max_num_tokens": 8}) == {"kind": "trtllm", "max_num_tokens": 8}


@pytest.mark.parametrize("rid", [AGG, DISAGG])
def test_sglang_rows_get_the_sglang_kind_and_others_do_not(silicon_rows: pd.DataFrame, rid: str, monkeypatch) -> None:
    r = silicon_rows.loc[rid]
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    scheds = [sc["scheduler"]] + [
        p["scheduler"] for p in sc["cluster"].values() if isinstance(p, dict) and "scheduler" in p
    ]
    assert all(s["kind"] == "sglang" for s in scheds)
    assert sc["scheduler"]["chunked_prefill_size"] == 8192  # the instance's chunk (attention DP splits it per rank)
    sim.load_scenario({**sc, "serving_engine": cov.serving_engine(r)})  # a valid scenario with the SGLang preset
    monkeypatch.setattr(cov, "READ_SGLANG_KIND", False)
    old = cov.scenario(r, cov._fixed_workload(1, r))
    assert old["scheduler"]["kind"] == "sarathi"
    assert cov.sglang_kind(old["scheduler"]) == sc["scheduler"]
    t = silicon_rows.loc[TRT]
    monkeypatch.setattr(cov, "READ_SGLANG_KIND", True)
    assert cov.scenario(t, cov._fixed_workload(1, t))["scheduler"]["kind"] != "sglang"

"""benchmarks/validation_silicon.py reads a silicon row as coverage.py does: the InferenceX recipe's knobs
(coverage_recipes) go into the replayed scenario, with vLLM V1's scheduler where no `sarathi`-only hook is set.
Checked on rows built from the shared file's first row (skipped where it is not present)."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks import coverage, validation_silicon

pytestmark = pytest.mark.skipif(not coverage.CSV.exists(), reason="shared silicon_sample.csv not present")
LATE = "db-dump/2026-04-27; silicon_concurrency={c}; measured=2026-04-08T00:00:00.000Z"


@pytest.fixture(scope="module")
def first() -> dict[str, object]:
    return dict(pd.read_csv(coverage.CSV).iloc[0])


def _row(first: dict[str, object], clients: int, **kw: object) -> pd.Series:
    base = {**first, "mode": "agg", "attention_dp_size": 1.0, "moe_tp_size": float("nan"), "moe_ep_size": 1.0}
    return pd.Series({**base, "batch_size": clients, "silicon_data_source": LATE.format(c=clients), **kw})


def test_vllm_recipe_budget_reaches_the_vllm_scheduler(first: dict[str, object]) -> None:
    # minimaxm2.5_fp8_b200.sh passes --max-num-batched-tokens $((ISL * 2)) from 2026-04-03: 2 x 8192
    mm = _row(
        first,
        4,
        model_path="MiniMaxAI/MiniMax-M2.5",
        system="b200_sxm",
        precision="fp8",
        backend="vllm",
        gemm_quant_mode="fp8",
        moe_quant_mode="fp8",
        tp_size=4.0,
        moe_ep_size=4.0,
        isl=8192,
        osl=1024,
    )
    sc, why = validation_silicon.scenario_for(mm)
    assert sc is not None, why
    assert sc.scheduler.kind == "vllm" and sc.scheduler.max_num_batched_tokens == 16384
    early = mm.copy()
    early["silicon_data_source"] = LATE.format(c=4).replace("2026-04-08", "2026-03-28")
    sc, why = validation_silicon.scenario_for(early)
    assert sc is not None, why
    assert sc.scheduler.max_num_batched_tokens == 8192  # before the recipe set it: coverage's default


def test_sglang_receive_interval_keeps_the_sarathi_scheduler(first: dict[str, object]) -> None:
    # dsr1_fp4_b200.sh: --scheduler-recv-interval 30 from 16 clients, --chunked-prefill-size 16384
    ds = _row(
        first,
        16,
        model_path="deepseek-ai/DeepSeek-R1",
        system="b200_sxm",
        precision="fp4",
        backend="sglang",
        gemm_quant_mode="nvfp4",
        moe_quant_mode="nvfp4",
        tp_size=8.0,
        moe_ep_size=8.0,
    )
    sc, why = validation_silicon.scenario_for(ds)
    assert sc is not None, why
    assert sc.serving_engine is not None and sc.serving_engine.scheduler_recv_interval == 30
    assert sc.scheduler.kind == "sarathi" and sc.scheduler.token_budget == 16384
    gap = ds.copy()  # aiconfigurator's own campaign: no InferenceX recipe, so no knob and vLLM's scheduler
    gap["silicon_data_source"] = "gap-analysis; silicon_concurrency=16"
    sc, why = validation_silicon.scenario_for(gap)
    assert sc is not None, why
    assert sc.serving_engine is not None and sc.serving_engine.scheduler_recv_interval == 1
    assert sc.scheduler.kind == "vllm" and sc.scheduler.max_num_batched_tokens == 8192

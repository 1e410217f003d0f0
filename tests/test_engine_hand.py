"""Hand-computed timelines: the engine must reproduce them to the last bit of arithmetic we can do by hand."""

from __future__ import annotations

import contextlib
import math

import pytest

import sim
from tests.helpers import scenario, write_csv
from tests.oracle_decode import per_request_decoding

LIN = {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002}


def rows(res: sim.Result) -> list[dict]:
    return res.requests.to_dict("records")


def test_single_request_fcfs(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 5)])
    r = rows(sim.run(scenario(tr)))[0]
    # prefill 10 tokens: 0.01 + 10 * 0.001 = 0.02; then 4 decodes of 0.01 + 0.002
    assert r["first_token_s"] == pytest.approx(0.02)
    assert r["completion_s"] == pytest.approx(0.02 + 4 * 0.012)
    assert r["tpot_s"] == pytest.approx(0.012)
    assert r["queue_delay_s"] == 0.0
    assert r["generated_tokens"] == 5


def test_two_requests_batched_prefill(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (0.0, 10, 3)])
    res = sim.run(scenario(tr))
    df = res.requests
    # one prefill iteration of 20 tokens, then decodes of 2 sequences
    assert df["first_token_s"].tolist() == pytest.approx([0.03, 0.03])
    assert df["completion_s"].tolist() == pytest.approx([0.03 + 2 * 0.014] * 2)


def test_arrival_cuts_decode_run_at_iteration_end(tmp_path):
    # A decodes in steps ending 0.032, 0.044, 0.056 ...; B arrives at 0.05 and is prefilled from 0.056
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 100), (0.05, 10, 2)])
    for ff in (True, False):
        df = sim.run(scenario(tr, fast_forward=ff)).requests
        b = df.iloc[1]
        assert b["first_scheduled_s"] == pytest.approx(0.056)
        assert b["first_token_s"] == pytest.approx(0.056 + 0.02)
        # then A and B decode together: 0.01 + 2 * 0.002
        assert b["completion_s"] == pytest.approx(0.076 + 0.014)


def test_sarathi_chunks_prompt_and_mixes_decodes(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 100, 2)])
    sched = {"kind": "sarathi", "token_budget": 40}
    r = rows(sim.run(scenario(tr, scheduler=sched)))[0]
    # chunks 40, 40, 20: each 0.01 + q * 0.001
    assert r["first_token_s"] == pytest.approx(0.05 + 0.05 + 0.03)
    assert r["completion_s"] == pytest.approx(0.13 + 0.012)


def test_fcfs_prefill_first_pauses_decodes(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (0.021, 30, 1)])
    df = sim.run(scenario(tr)).requests
    a, b = df.iloc[0], df.iloc[1]
    # A: prefill to 0.02, decode step to 0.032; B arrives 0.021 -> prefill 0.032..0.072 (A waits)
    assert b["first_token_s"] == pytest.approx(0.032 + 0.04)
    assert b["completion_s"] == pytest.approx(0.072)  # one-token output ends at its prefill
    assert a["completion_s"] == pytest.approx(0.072 + 0.012)


def test_rejections_are_counted_with_reasons(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 4000, 200), (0.0, 10, 5), (0.1, 300, 10)])
    res = sim.run(scenario(tr, kv_blocks=16))  # 256 tokens of KV
    df = res.requests
    assert df["status"].tolist() == ["rejected", "completed", "rejected"]
    assert df["reject_reason"].tolist() == ["exceeds_context", "", "exceeds_kv_cache"]
    c = res.summary["counts"]
    assert (c["arrived"], c["completed"], c["rejected"], c["in_flight"]) == (3, 1, 2, 0)


def test_preemption_recomputes_and_keeps_every_token(tmp_path):
    # 8 blocks of 16 tokens = 128 tokens; four requests of 20 + 60 tokens cannot all stay resident
    tr = write_csv(tmp_path / "t.csv", [(0.0, 20, 60)] * 4)
    res = sim.run(scenario(tr, kv_blocks=8))
    df = res.requests
    assert (df["status"] == "completed").all()
    assert (df["generated_tokens"] == 60).all()
    assert df["preemptions"].sum() > 0
    assert res.summary["counts"]["preemptions"] == df["preemptions"].sum()


def test_horizon_leaves_requests_in_flight(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 1000), (0.0, 10, 2)])
    res = sim.run(scenario(tr, engine={"horizon_s": 1.0}))
    df = res.requests
    assert df["status"].tolist() == ["in_flight", "completed"]
    assert math.isnan(df["completion_s"].iloc[0])
    assert 0 < df["generated_tokens"].iloc[0] < 1000
    assert res.summary["counts"]["in_flight"] == 1


def test_roofline_decode_is_memory_bound():
    from hwprofiles import catalog
    from sim.costmodel.models import RooflineCost, RooflineCostConfig

    cfg = RooflineCostConfig(iteration_overhead_s=0.0)
    cm = RooflineCost(cfg, catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm"), 1)
    m = catalog.model("llama-3.1-8b")
    one = float(cm.decode_run(1, [1000])[0])
    # batch-1 decode reads every weight once except the embedding table (a lookup): a lower bound, within 10%
    read = m.weight_bytes(1) - m.vocab_size * m.hidden_size * m.dtype_bytes
    floor = read / (catalog.gpu("h100-sxm").mem_bw * cfg.memory_efficiency)
    assert floor <= one <= 1.1 * floor
    # prefill of 4096 tokens is compute-bound: ~2 * params * tokens FLOPs
    pre = cm.iteration([(4096, 0)], 0, 0)
    flops = 2 * m.num_params * 4096 / (catalog.gpu("h100-sxm").bf16_flops * cfg.compute_efficiency)
    assert flops <= pre <= 1.3 * flops


def test_decode_run_matches_stepwise_bit_for_bit():
    import numpy as np

    from hwprofiles import catalog
    from sim.costmodel.models import RooflineCost, RooflineCostConfig

    cm = RooflineCost(RooflineCostConfig(), catalog.model("llama-2-70b"), catalog.gpu("a100-80g"), 4)
    ctx = np.arange(5000, 5000 + 32 * 50, 32)
    run = cm.decode_run(32, ctx)
    steps = [float(cm.decode_run(32, ctx[i : i + 1])[0]) for i in range(len(ctx))]
    assert run.tolist() == steps


@pytest.mark.parametrize(
    "sched", [{"kind": "fcfs"}, {"kind": "sarathi", "token_budget": 32}, {"kind": "trtllm", "max_num_tokens": 32}]
)
def test_swap_preemption_under_pressure_matches_reference(tmp_path, sched):
    """Swap-ins that join the decode cohort mid-plan (and fail to get a slot) keep the KV books exact."""
    tr = write_csv(tmp_path / "t.csv", [(0.0, 20, 60), (0.0, 20, 60), (0.001, 30, 50), (0.002, 20, 60), (0.05, 10, 40)])
    runs = {}
    for oracle in (True, False):
        for ff in (True, False):
            with per_request_decoding() if oracle else contextlib.nullcontext():
                sc = scenario(tr, kv_blocks=9, scheduler=sched, preemption="swap", engine={"fast_forward": ff})
                runs[(oracle, ff)] = sim.run(sc).requests
    ref = runs[(True, False)]  # the per-request reference, step by step
    assert ref["preemptions"].sum() > 10
    assert (ref["generated_tokens"] == ref["output_tokens"]).all()
    for df in runs.values():
        assert df.equals(ref)

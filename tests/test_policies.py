"""Hand-built micro-scenarios where the right order is known, asserted on per-request timestamps.

Costs are `linear` (helpers: base 0.01 s + 0.001 s per prefill token + 0.002 s per decoding sequence),
so a 10-token prefill takes 0.02 s and a decode step of one sequence 0.012 s, of two 0.014 s.
Every scenario runs with fast-forward on and off and must give the same table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim
from tests.helpers import scenario, tiny_gpu, write_csv

PRE10 = 0.02  # prefill of a 10-token prompt
D1, D2 = 0.012, 0.014  # one decode step with one / two sequences


def run_both(sc: dict[str, Any]) -> pd.DataFrame:
    """Run with fast-forward on and off; they must agree bit for bit. Returns the requests table."""
    a = sim.run({**sc, "engine": {**sc.get("engine", {}), "fast_forward": True}})
    b = sim.run({**sc, "engine": {**sc.get("engine", {}), "fast_forward": False}})
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert (a.requests["status"] == "completed").all()
    assert (a.requests["generated_tokens"] == a.requests["output_tokens"]).all()
    return a.requests


def csv_with_class(path: Path, rows: list[tuple[float, int, int, str]]) -> Path:
    path.write_text(
        "arrival_s,prompt_tokens,output_tokens,class\n" + "".join(f"{a!r},{p},{o},{c}\n" for a, p, o, c in rows)
    )
    return path


# -- sjf / srpt ---------------------------------------------------------------------------------------------
def test_sjf_serves_the_short_request_first(tmp_path):
    # one seat: R0 runs first; R1 (50 tokens) and R2 (2 tokens) wait; SJF takes R2 before R1
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (0.001, 10, 50), (0.002, 10, 2)])
    sjf = run_both(scenario(tr, scheduler={"kind": "sjf", "max_num_seqs": 1}))
    r0_done = PRE10 + 2 * D1
    assert sjf["completion_s"][0] == pytest.approx(r0_done)
    assert sjf["first_token_s"][2] == pytest.approx(r0_done + PRE10)
    assert sjf["completion_s"][2] == pytest.approx(r0_done + PRE10 + D1)
    assert sjf["completion_s"][1] == pytest.approx(r0_done + PRE10 + D1 + PRE10 + 49 * D1)
    fcfs = run_both(scenario(tr, scheduler={"kind": "fcfs", "max_num_seqs": 1}))
    assert fcfs["completion_s"][1] == pytest.approx(r0_done + PRE10 + 49 * D1)  # FCFS: the long one first
    assert sjf["e2el_s"].mean() < fcfs["e2el_s"].mean()


def test_sjf_is_not_preemptive_but_srpt_is(tmp_path):
    # R0 (20 tokens) decodes in steps ending 0.032, 0.044, 0.056; R1 (2 tokens) arrives at 0.05
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 20), (0.05, 10, 2)])
    srpt = run_both(scenario(tr, scheduler={"kind": "srpt", "max_num_seqs": 1}))
    t = PRE10 + 3 * D1  # 0.056: the step in flight ends, then R1 (2 left) beats R0 (16 left)
    assert srpt["first_token_s"][1] == pytest.approx(t + PRE10)
    assert srpt["completion_s"][1] == pytest.approx(t + PRE10 + D1)
    assert srpt["completion_s"][0] == pytest.approx(t + PRE10 + D1 + 16 * D1)  # resumes with its KV kept
    assert srpt["preemptions"].sum() == 0  # descheduled, not evicted
    sjf = run_both(scenario(tr, scheduler={"kind": "sjf", "max_num_seqs": 1}))
    r0_done = PRE10 + 19 * D1
    assert sjf["completion_s"][0] == pytest.approx(r0_done)
    assert sjf["completion_s"][1] == pytest.approx(r0_done + PRE10 + D1)


def test_sjf_with_predicted_lengths_follows_the_prediction(tmp_path):
    # a predictor that halves every length keeps the order, so SJF on predictions = SJF on truth here
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (0.001, 10, 50), (0.002, 10, 2)])
    sc = scenario(tr, scheduler={"kind": "sjf", "max_num_seqs": 1, "lengths": "predicted"})
    sc["predictor"] = {"kind": "noisy", "sigma": 0.0, "bias": -0.693}
    df = run_both(sc)
    assert df["predicted_tokens"].tolist() == [2, 25, 1]
    assert df["completion_s"][2] < df["completion_s"][1]


# -- mlfq ---------------------------------------------------------------------------------------------------
MLFQ = {"kind": "mlfq", "max_num_seqs": 1, "base_quantum_s": 0.025, "quantum_ratio": 2.0}


def test_mlfq_demotes_a_long_request_after_its_quantum(tmp_path):
    # quanta 0.025, 0.05, ... s; a solo step is 0.012 s, so queue 0 allows ceil(0.025/0.012) = 3 tokens.
    # R0 makes tokens at 0.02, 0.032, 0.044 -> demoted at 0.044; R1 (queue 0) arrives at 0.06 and takes the
    # seat when the step in flight ends at 0.068.
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 100), (0.06, 10, 2)])
    df = run_both(scenario(tr, scheduler=MLFQ))
    t = PRE10 + 4 * D1  # 0.068
    assert df["first_token_s"][1] == pytest.approx(t + PRE10)
    assert df["completion_s"][1] == pytest.approx(t + PRE10 + D1)
    assert df["completion_s"][0] == pytest.approx(t + PRE10 + D1 + 95 * D1)
    # with a single queue nothing is demoted: R1 waits for all of R0
    one = run_both(scenario(tr, scheduler={**MLFQ, "num_queues": 1}))
    r0_done = PRE10 + 99 * D1
    assert one["completion_s"][0] == pytest.approx(r0_done)
    assert one["first_token_s"][1] == pytest.approx(r0_done + PRE10)


def test_mlfq_skip_join_places_a_long_prompt_low(tmp_path):
    # R0's 100-token prefill takes 0.11 s > 0.1 s (queue 2's quantum): it joins queue 3 and R1, a short
    # prompt joining queue 0, preempts it right away (at 0.122). Without skip-join R0 sits in queue 0 and
    # keeps the seat until its 3-token quantum is used (0.134).
    tr = write_csv(tmp_path / "t.csv", [(0.0, 100, 50), (0.12, 10, 2)])
    pre100 = 0.01 + 0.1
    skip = run_both(scenario(tr, scheduler=MLFQ))
    assert skip["first_token_s"][1] == pytest.approx(pre100 + D1 + PRE10)
    flat = run_both(scenario(tr, scheduler={**MLFQ, "skip_join": False}))
    assert flat["first_token_s"][1] == pytest.approx(pre100 + 2 * D1 + PRE10)


def test_mlfq_evicts_preempted_kv_when_asked(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 100), (0.06, 10, 2)])
    df = run_both(scenario(tr, scheduler={**MLFQ, "keep_kv": False}))
    t = PRE10 + 4 * D1
    # R0 is evicted (recompute) when R1 takes the seat, then re-prefills its 10 + 5 tokens
    assert df["preemptions"][0] == 1
    assert df["completion_s"][1] == pytest.approx(t + PRE10 + D1)
    assert df["completion_s"][0] == pytest.approx(t + PRE10 + D1 + (0.01 + 0.015) + 94 * D1)


# -- priority -----------------------------------------------------------------------------------------------
CLASSES = [
    {"name": "ls", "share": 1, "priority": 0, "slo": {"ttft_s": 0.05}},
    {"name": "be", "share": 1, "priority": 1},
]


def _prio_scenario(tr: Path, **kw: Any) -> dict[str, Any]:
    sc = scenario(tr, **kw)
    sc["workload"]["classes"] = CLASSES
    return sc


def test_priority_preempts_best_effort_for_a_latency_sensitive_arrival(tmp_path):
    # 2 KV blocks (32 tokens): best-effort R0 (20 + 12 tokens) holds both when latency-sensitive R1 arrives
    # at 0.05; at 0.054 R0 is evicted (recompute), R1 runs, then R0 re-prefills its 20 + 3 tokens.
    tr = csv_with_class(tmp_path / "t.csv", [(0.0, 20, 12, "be"), (0.05, 10, 2, "ls")])
    df = run_both(_prio_scenario(tr, kv_blocks=2, scheduler={"kind": "priority"}))
    pre20 = 0.01 + 0.02
    t = pre20 + 2 * D1  # 0.054
    assert df["first_token_s"][1] == pytest.approx(t + PRE10)
    assert df["completion_s"][1] == pytest.approx(t + PRE10 + D1)
    assert df["preemptions"].tolist() == [1, 0]
    assert df["completion_s"][0] == pytest.approx(t + PRE10 + D1 + (0.01 + 0.023) + 8 * D1)
    # without priorities the latency-sensitive request waits for the best-effort one to finish
    fcfs = run_both(_prio_scenario(tr, kv_blocks=2, scheduler={"kind": "fcfs"}))
    assert fcfs["first_token_s"][1] == pytest.approx(0.03 + 11 * D1 + PRE10)


def test_priority_swap_prices_the_host_link(tmp_path):
    # same, with swap: R0's 2 blocks go to host and back, each way 2 x 8192 B at 8.192 MB/s = 2 ms
    tr = csv_with_class(tmp_path / "t.csv", [(0.0, 20, 12, "be"), (0.05, 10, 2, "ls")])
    sc = _prio_scenario(tr, kv_blocks=2, scheduler={"kind": "priority"})
    sc["hardware"] = {**tiny_gpu(2), "host_link_bw": 8.192e6}
    sc["kv_cache"] = {**sc["kv_cache"], "preemption": "swap"}
    df = run_both(sc)
    t = 0.03 + 2 * D1
    swap = 2 * 8192 / 8.192e6
    assert df["first_token_s"][1] == pytest.approx(t + PRE10 + swap)  # swap-out rides on R1's prefill
    done1 = t + PRE10 + swap + D1
    assert df["completion_s"][1] == pytest.approx(done1)
    # R0 comes back without recomputing: swap-in on its first step, then 8 more steps
    assert df["completion_s"][0] == pytest.approx(done1 + swap + 9 * D1)
    assert df["preemptions"].tolist() == [1, 0]
    res = sim.run(sc)
    assert res.instances["swap_s"].iloc[0] == pytest.approx(2 * swap)


def test_priority_reports_per_class_metrics(tmp_path):
    tr = csv_with_class(tmp_path / "t.csv", [(0.0, 20, 12, "be"), (0.05, 10, 2, "ls")])
    res = sim.run(_prio_scenario(tr, kv_blocks=2, scheduler={"kind": "priority"}))
    cls = res.summary["classes"]
    assert set(cls) == {"ls", "be"}
    assert cls["ls"]["counts"]["completed"] == 1 and cls["be"]["counts"]["completed"] == 1
    assert cls["ls"]["slo"]["ttft_s"] == 0.05
    assert cls["ls"]["slo_attainment"] == 1.0  # TTFT 0.02 s
    assert res.requests["class"].tolist() == ["be", "ls"]
    assert res.requests["priority"].tolist() == [1, 0]


# -- ltr ----------------------------------------------------------------------------------------------------
def test_ltr_ranks_by_prediction_and_the_starvation_guard_promotes(tmp_path):
    # One seat, oracle scores. Long L (30 tokens) is overtaken by short S1, S2, S3 (3 tokens each), each
    # arriving while the previous one runs. L was last in the batch in iteration 1 (ending 0.02); left
    # out for 5 iterations, it is promoted at 0.096 for 2 iterations, while S2 waits with its KV kept.
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 30), (0.001, 10, 3), (0.05, 10, 3), (0.1, 10, 3)])
    sc = scenario(tr, scheduler={"kind": "ltr", "max_num_seqs": 1, "starvation_iters": 5, "promote_iters": 2})
    sc["predictor"] = {"kind": "oracle"}
    df = run_both(sc)
    s1_done = PRE10 + PRE10 + 2 * D1  # 0.064: S1 right after L's prefill
    assert df["completion_s"][1] == pytest.approx(s1_done)
    assert df["first_token_s"][2] == pytest.approx(s1_done + PRE10)  # 0.084
    assert df["completion_s"][2] == pytest.approx(s1_done + PRE10 + D1 + 2 * D1 + D1)  # paused 0.096 .. 0.12
    assert df["completion_s"][3] == pytest.approx(0.132 + PRE10 + 2 * D1)
    assert df["completion_s"][0] == pytest.approx(0.176 + 27 * D1)
    free = run_both({**sc, "scheduler": {**sc["scheduler"], "starvation_iters": None}})
    assert free["completion_s"][2] == pytest.approx(s1_done + PRE10 + 2 * D1)  # no guard: S2 runs through
    assert free["completion_s"][3] == pytest.approx(0.108 + PRE10 + 2 * D1)


def test_ltr_requires_a_predictor(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3)])
    with pytest.raises(sim.ServesimError, match="predictor"):
        sim.load_scenario(scenario(tr, scheduler={"kind": "ltr"}))


# -- static batching ------------------------------------------------------------------------------------------
def test_fixed_batch_waits_for_b_requests(tmp_path):
    # b = 2: R0 (t=0) waits for R1 (t=0.1); the batch ends when R1, the longest, ends; R2 comes after
    # the last arrival and is served alone at once (no more arrivals will fill its batch)
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (0.1, 10, 5), (0.2, 10, 2)])
    df = run_both(scenario(tr, scheduler={"kind": "static", "mode": "fixed", "batch_size": 2}))
    start = 0.1
    first = start + 0.01 + 0.02  # one prefill of 20 tokens
    assert df["first_scheduled_s"][0] == pytest.approx(start)
    assert df["first_token_s"][:2].tolist() == pytest.approx([first, first])
    batch_end = first + 2 * D2 + 2 * D1  # R0 needs 2 more steps (with R1), R1 2 more alone
    assert df["completion_s"][:2].tolist() == pytest.approx([batch_end, batch_end])  # delivered together
    assert df["first_token_s"][2] == pytest.approx(0.2 + PRE10)
    assert df["completion_s"][2] == pytest.approx(0.2 + PRE10 + D1)


def test_fixed_batch_max_wait_starts_a_short_batch(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (1.0, 10, 3), (1.0, 10, 3)])
    df = run_both(scenario(tr, scheduler={"kind": "static", "mode": "fixed", "batch_size": 2, "max_wait_s": 0.25}))
    assert df["first_scheduled_s"][0] == pytest.approx(0.25)
    assert df["first_scheduled_s"][1] == pytest.approx(1.0)


def test_dynamic_batch_admits_nobody_midway_and_elastic_releases_early(tmp_path):
    # R0 runs alone; R1 and R2 arrive meanwhile and form the next batch when R0 is done
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 10), (0.005, 10, 2), (0.006, 10, 4)])
    dyn = run_both(scenario(tr, scheduler={"kind": "static", "mode": "dynamic"}))
    r0_done = PRE10 + 9 * D1
    assert dyn["completion_s"][0] == pytest.approx(r0_done)
    first = r0_done + 0.03
    assert dyn["first_token_s"][1:].tolist() == pytest.approx([first, first])
    batch_end = first + D2 + 2 * D1
    assert dyn["completion_s"][1:].tolist() == pytest.approx([batch_end, batch_end])
    ela = run_both(scenario(tr, scheduler={"kind": "static", "mode": "elastic"}))
    assert ela["completion_s"][1] == pytest.approx(first + D2)  # its own last token
    assert ela["completion_s"][2] == pytest.approx(batch_end)
    fcfs = run_both(scenario(tr))
    assert fcfs["completion_s"][1] < ela["completion_s"][1]  # continuous batching lets R1 join R0's batch


# -- length_group ---------------------------------------------------------------------------------------------
def test_length_group_caps_the_batch_and_recomputes_failures(tmp_path):
    # predictions = true x e^-1: R0 (10) -> 4, R1 (3) -> 1; one bucket, so one batch capped at 4 tokens.
    # R1 finishes at its 3rd token; R0 reaches the cap unfinished at 0.070, fails, and is recomputed
    # (10 + 4 tokens) in a batch of failures with no cap.
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 10), (0.0, 10, 3)])
    sc = scenario(tr, scheduler={"kind": "length_group"})
    sc["predictor"] = {"kind": "noisy", "sigma": 0.0, "bias": -1.0}
    df = run_both(sc)
    assert df["predicted_tokens"].tolist() == [4, 1]
    first = 0.03
    assert df["completion_s"][1] == pytest.approx(first + 2 * D2)
    fail = first + 2 * D2 + D1
    assert df["preemptions"].tolist() == [1, 0]
    assert df["completion_s"][0] == pytest.approx(fail + (0.01 + 0.014) + 5 * D1)


def test_length_group_batches_buckets_separately(tmp_path):
    # oracle predictions 3 and 200 fall in different 50-token buckets: two batches, oldest first
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 3), (0.0, 10, 200), (0.0, 10, 4)])
    sc = scenario(tr, scheduler={"kind": "length_group"})
    sc["predictor"] = {"kind": "oracle"}
    df = run_both(sc)
    first = 0.01 + 0.02  # R0 and R2 (bucket 0) prefilled together
    assert df["first_token_s"][0] == pytest.approx(first) and df["first_token_s"][2] == pytest.approx(first)
    assert df["first_scheduled_s"][1] == pytest.approx(first + 2 * D2 + D1)  # after bucket 0's batch
    assert df["preemptions"].sum() == 0

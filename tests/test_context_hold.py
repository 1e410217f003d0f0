"""TensorRT-LLM's context holds (`serving_engine.attention_dp_balance`, `batch_wait_*`) on hand-computed timelines.

Linear costs: an iteration is 10 ms + 1 ms per prefill token + 2 ms per decoding sequence, so a decode step of
one sequence is 12 ms and of two 14 ms; a held prompt's TTFT grows by exactly the held decode steps.
"""

from __future__ import annotations

import re

import pytest
import yaml

import sim
from policies.context_hold import HoldTerms, hold_terms
from sim.costmodel.engine import preset
from sim.errors import ServesimError
from tests.helpers import scenario, write_csv

SARATHI = {"kind": "sarathi", "max_num_seqs": 16, "token_budget": 64}


def _ttft(tmp_path, rows, engine=None, dp=1, fast_forward=True, sched=SARATHI):
    tr = write_csv(tmp_path / "w.csv", rows)
    sc = scenario(tr, scheduler=sched, fast_forward=fast_forward)
    if dp > 1:
        sc["cluster"]["attention_dp"] = dp
    if engine is not None:
        sc["serving_engine"] = {"kind": "trtllm", **engine}
    return sim.run(sim.load_scenario(sc)).requests["ttft_s"].tolist()


@pytest.mark.parametrize("ff", [True, False])
def test_batch_wait_holds_a_prompt_for_timeout_iterations(tmp_path, ff):
    # A (prompt 10) prefills alone: 0.020; then decodes alone, 12 ms a step (0.032, 0.044, 0.056, ...).
    # B (prompt 5) arrives at 0.050; the next iteration starts at 0.056.
    # No hold: B prefills beside A's decode at once: 0.010 + 5 ms + 2 ms = 17 ms -> TTFT 0.056 + 0.017 - 0.050.
    # batch_wait_timeout_iters 4: TRT-LLM's counter holds B at 0, 1, 2, 3 and lets it go at 4: 4 decode steps more.
    rows = [(0.0, 10, 100), (0.05, 5, 2)]
    free = _ttft(tmp_path, rows, {}, fast_forward=ff)
    held = _ttft(tmp_path, rows, {"batch_wait_timeout_iters": 4}, fast_forward=ff)
    assert free[1] == pytest.approx(0.023, abs=1e-12)
    assert held[1] - free[1] == pytest.approx(4 * 0.012, abs=1e-12)
    assert held[0] == free[0]  # the first prompt had nobody decoding: never held


def test_batch_wait_stops_once_the_tokens_reach_the_ratio(tmp_path):
    # ratio 0.1 of a 64-token budget = 6.4 tokens: B's 5 prompt tokens + A's 1 decode token fall short (held the
    # full 4 steps); a 7-token prompt + 1 reaches it (not held at all).
    engine = {"batch_wait_timeout_iters": 4, "batch_wait_max_tokens_ratio": 0.1}
    short = _ttft(tmp_path, [(0.0, 10, 100), (0.05, 5, 2)], engine)
    assert short[1] == pytest.approx(0.023 + 4 * 0.012, abs=1e-12)
    long = _ttft(tmp_path, [(0.0, 10, 100), (0.05, 7, 2)], engine)
    assert long[1] == pytest.approx(0.006 + 0.019, abs=1e-12)  # 0.056 - 0.050 + (10 + 7 + 2) ms


@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize(("arrival", "held_steps"), [(0.050, 3), (0.105, 5)])
def test_attention_dp_balance_counter_cycles_with_the_iterations(tmp_path, ff, arrival, held_steps):
    # dp 2, timeout 6, no batching wait. A1, A2 (prompt 10) prefill together in iteration 1 (0.030), then decode
    # two at a time, 14 ms a step: iteration j ends at 0.030 + 0.014 (j - 1). From iteration 2 every rank
    # generates and not every rank has a context request, so TRT-LLM's counter runs 1, 2, ..., 5, 6 -> 0 whether or
    # not a prompt waits; a lone prompt B (one rank's worth) goes when the counter wraps: iteration 7, or 13.
    # B at 0.050 (in iteration 3): held in iterations 4-6 (3 steps); B at 0.105 (in iteration 7): held 8-12 (5).
    # A timeout counted from B's arrival would hold 6 steps in both cases.
    rows = [(0.0, 10, 300), (0.0, 10, 300), (arrival, 5, 2)]
    engine = {"attention_dp_balance": True, "attention_dp_timeout_iters": 6, "attention_dp_batching_wait_iters": 0}
    free = _ttft(tmp_path, rows, {}, dp=2, fast_forward=ff)
    held = _ttft(tmp_path, rows, engine, dp=2, fast_forward=ff)
    assert held[2] - free[2] == pytest.approx(held_steps * 0.014, abs=1e-12)
    assert held[:2] == free[:2]


@pytest.mark.parametrize(
    ("engine", "dp", "rows"),
    [
        (
            {"attention_dp_balance": True, "attention_dp_timeout_iters": 6, "attention_dp_batching_wait_iters": 0},
            2,
            [(0.0, 10, 300), (0.0, 10, 300), (0.05, 500, 20)],
        ),
        ({"batch_wait_timeout_iters": 4}, 1, [(0.0, 10, 300), (0.05, 500, 20)]),
    ],
)
def test_a_prompt_longer_than_the_budget_is_held_chunk_by_chunk_as_in_stepping(tmp_path, engine, dp, rows):
    # A 500-token prompt takes 8 chunks of a 64-token budget while others decode: the hold decides before every
    # chunk (a chunk can be held again), so a fast-forward run of chunks must not price several at once.
    sched = {**SARATHI}
    ff = sim.run(sim.load_scenario(_hold_scenario(tmp_path, rows, engine, dp, True, sched))).requests
    step = sim.run(sim.load_scenario(_hold_scenario(tmp_path, rows, engine, dp, False, sched))).requests
    assert ff["ttft_s"].tolist() == pytest.approx(step["ttft_s"].tolist(), abs=1e-12)
    assert ff["completion_s"].tolist() == pytest.approx(step["completion_s"].tolist(), abs=1e-12)
    free = _ttft(tmp_path, rows, {}, dp=dp, fast_forward=False)
    assert step["ttft_s"].iloc[-1] > free[-1]  # the hold did act on the long prompt


def _hold_scenario(tmp_path, rows, engine, dp, fast_forward, sched):
    tr = write_csv(tmp_path / "w.csv", rows)
    sc = scenario(tr, scheduler=sched, fast_forward=fast_forward)
    if dp > 1:
        sc["cluster"]["attention_dp"] = dp
    sc["serving_engine"] = {"kind": "trtllm", **engine}
    return sc


def test_attention_dp_balance_lets_prompts_go_when_a_rank_has_nothing_to_generate(tmp_path):
    # dp 4 but only 2 decoders: some rank generates nothing, so TRT-LLM lets context requests go at once.
    rows = [(0.0, 10, 300), (0.0, 10, 300), (0.05, 5, 2)]
    engine = {"attention_dp_balance": True, "attention_dp_timeout_iters": 6}
    assert _ttft(tmp_path, rows, engine, dp=4) == _ttft(tmp_path, rows, {}, dp=4)


def test_attention_dp_balance_batching_wait_once_every_rank_has_a_prompt(tmp_path):
    # dp 2: two prompts arrive together while both ranks generate -> every rank has one; batching_wait_iters 3
    # holds them 3 steps more (counter 0 -> 1, 2, 3, then released at the 4th call).
    rows = [(0.0, 10, 300), (0.0, 10, 300), (0.05, 5, 2), (0.05, 5, 2)]
    engine = {"attention_dp_balance": True, "attention_dp_timeout_iters": 60, "attention_dp_batching_wait_iters": 3}
    free = _ttft(tmp_path, rows, {}, dp=2)
    held = _ttft(tmp_path, rows, engine, dp=2)
    assert [h - f for h, f in zip(held[2:], free[2:], strict=True)] == pytest.approx([3 * 0.014] * 2, abs=1e-12)


def test_presets_hold_nothing_and_balance_needs_attention_dp():
    for kind in ("vllm-v1", "sglang", "trtllm"):
        assert not hold_terms(preset(kind), 8, 8192).active
    on = preset("trtllm", attention_dp_balance=True)
    assert hold_terms(on, 2, 8192).active and not hold_terms(on, 1, 8192).active  # TRT-LLM: only with ADP
    assert not HoldTerms(dp=2, wait_timeout_iters=40).active  # batch waiting is skipped with attention DP


@pytest.mark.parametrize(
    ("engine", "dp", "field"),
    [
        ({"batch_wait_timeout_iters": 40}, 1, "batch_wait_timeout_iters"),
        ({"batch_wait_max_tokens_ratio": 0.5}, 1, "batch_wait_max_tokens_ratio"),
        ({"attention_dp_balance": True}, 2, "attention_dp_balance"),
    ],
)
def test_holds_with_another_scheduler_are_one_clear_error_at_the_field(tmp_path, engine, dp, field):
    # Loading the file fails (not building the pools later), pointing at the engine field that switches a hold on.
    tr = write_csv(tmp_path / "w.csv", [(0.0, 10, 2)])
    sc = scenario(tr, scheduler={"kind": "fcfs"})
    if dp > 1:
        sc["cluster"]["attention_dp"] = dp
    sc["serving_engine"] = {"kind": "trtllm", **engine}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc, sort_keys=False))
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip().startswith(field + ":"))
    with pytest.raises(ServesimError) as err:
        sim.load_scenario(path)
    msg = str(err.value)
    assert re.search(rf"s\.yaml:{line}:\d+: serving_engine\.{field}: context holds .* need scheduler kind", msg), msg
    assert "need scheduler kind 'sarathi' or 'trtllm', not 'fcfs'" in msg

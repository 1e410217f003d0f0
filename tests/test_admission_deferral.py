"""Every wrapper that defers admission lets an idle instance take its requests: SGLang's receive interval
(`serving_engine.scheduler_recv_interval`, policies/continuous.py `RecvSarathi`) and TensorRT-LLM's context holds
(`attention_dp_balance`, `batch_wait_timeout_iters`, policies/context_hold.py `ContextHold`, obeyed by `sarathi`
and `trtllm`).

A deferral that plans nothing while requests wait and nothing runs would leave the instance with no step to end
and no wake-up: the run raises "scheduler planned nothing" (review 11: the receive interval did, on an instance
that drained its batch since its last poll). The property: over random workloads, deferral settings and KV sizes,
every request completes or is rejected on arrival because its KV could never fit, and fast-forwarded runs make
the same decisions as stepped ones. The receive interval applies to `sarathi` only (the scenario rejects it with
another kind, tests/test_recv_interval.py); the holds to `sarathi` and `trtllm` (HOLD_KINDS).

Both properties also run with the overlap-admission lag on and off (`serving_engine.overlap_admission`,
`Instance._lagged`): the field applies with the physical cost models only, so an example with the lag on is priced
by the roofline (ROOFLINE), one with it off by either; a receive-interval poll of an engine that plans one step
ahead receives at the previous plan (`policies.context_hold.received_at`), in both decode modes alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from policies.context_hold import HOLD_KINDS
from tests.helpers import same_result, scenario, write_csv
from tests.strategies import examples, linear_costs, request_rows

ROOFLINE = {"kind": "roofline", "iteration_overhead_s": 0.001}  # a physical model: the lag applies
SCHEDULERS = {
    "sarathi": {"kind": "sarathi", "max_num_seqs": 3, "token_budget": 48},
    "trtllm": {"kind": "trtllm", "max_num_tokens": 48, "max_batch_size": 3},
}


def _check(
    tmp: Any,
    rows: list[tuple[float, int, int]],
    sched: dict[str, Any],
    engine: dict[str, Any],
    exact_fit: bool,
    **kw: Any,
) -> None:
    """Run both decode modes; every request completes unless it can never fit; both agree bit for bit."""
    rows = sorted(rows)
    kv = kw.pop("kv_blocks")
    runs = []
    for ff in (True, False):
        sc = scenario(write_csv(tmp / "w.csv", rows), scheduler=sched, fast_forward=ff, kv_blocks=kv, **kw)
        sc["serving_engine"] = engine
        runs.append(sim.run(sim.load_scenario(sc)))
    counts = runs[0].summary["counts"]
    assert counts["arrived"] == len(rows) and counts["in_flight"] == 0 and counts["abandoned"] == 0
    assert counts["completed"] + counts["rejected"] == len(rows)
    if exact_fit:  # one rank: a request is rejected exactly when its blocks exceed the cache
        assert counts["rejected"] == sum(-(-(p + o) // 16) > kv for _, p, o in rows)
    same_result(runs[0], runs[1])


@settings(max_examples=examples(25), deadline=None)
@given(
    rows=st.lists(request_rows(1.0, 60, 40), min_size=1, max_size=16),
    interval=st.integers(1, 4),
    wait_iters=st.sampled_from([0, 0, 3]),
    kv=st.integers(8, 80),
    preemption=st.sampled_from(["recompute", "swap"]),
    instances=st.integers(1, 2),
    cost=linear_costs,
    lag=st.booleans(),
    physical=st.booleans(),
)
def test_receive_interval_never_strands_a_request(
    tmp_path_factory: Any,
    rows: list[tuple[float, int, int]],
    interval: int,
    wait_iters: int,
    kv: int,
    preemption: str,
    instances: int,
    cost: dict[str, Any],
    lag: bool,
    physical: bool,
) -> None:
    """SGLang's receive interval 1-4 on one or two instances (each its own poll counter), with TensorRT-LLM-style
    batch waiting on top in some examples (the two compose in `RecvSarathi`), under `sarathi`, the one scheduler
    it applies to; the overlap lag on or off."""
    engine = {"kind": "sglang", "scheduler_recv_interval": interval, "batch_wait_timeout_iters": wait_iters}
    engine["overlap_admission"] = lag
    tmp = tmp_path_factory.mktemp("r")
    sched = SCHEDULERS["sarathi"]
    cost = ROOFLINE if lag or physical else cost
    _check(tmp, rows, sched, engine, True, kv_blocks=kv, preemption=preemption, cost=cost, instances=instances)


@settings(max_examples=examples(25), deadline=None)
@given(
    rows=st.lists(request_rows(1.0, 60, 40), min_size=1, max_size=16),
    sched=st.sampled_from(HOLD_KINDS),
    dp=st.sampled_from([1, 2]),
    iters=st.integers(1, 8),
    batching=st.integers(0, 3),
    ratio=st.sampled_from([0.0, 0.5]),
    kv=st.integers(8, 80),
    cost=linear_costs,
    lag=st.booleans(),
    physical=st.booleans(),
)
def test_context_holds_never_strand_a_request(
    tmp_path_factory: Any,
    rows: list[tuple[float, int, int]],
    sched: str,
    dp: int,
    iters: int,
    batching: int,
    ratio: float,
    kv: int,
    cost: dict[str, Any],
    lag: bool,
    physical: bool,
) -> None:
    """Attention-DP balance (dp 2) or batch waiting (dp 1), under both schedulers that obey the holds; the overlap
    lag on or off."""
    engine: dict[str, Any] = {"kind": "trtllm", "overlap_admission": lag}
    if dp > 1:
        engine |= {
            "attention_dp_balance": True,
            "attention_dp_timeout_iters": iters,
            "attention_dp_batching_wait_iters": batching,
        }
    else:
        engine |= {"batch_wait_timeout_iters": iters, "batch_wait_max_tokens_ratio": ratio}
    tmp = tmp_path_factory.mktemp("h")
    extra: dict[str, Any] = {"cost": ROOFLINE if lag or physical else cost}
    if dp > 1:
        extra["cluster"] = {"instances": 1, "router": {"kind": "round_robin"}, "attention_dp": dp}
    _check(tmp, rows, SCHEDULERS[sched], engine, dp == 1, kv_blocks=kv, **extra)


@pytest.mark.parametrize("ff", [True, False])
def test_batch_wait_counter_cycles_on_while_a_let_go_prompt_finds_no_seat(tmp_path: Any, ff: bool) -> None:
    """Linear costs (10 ms + 1 ms a prefill token + 2 ms a decoder), two seats, batch_wait_timeout_iters 3. A (8
    tokens) and B take the seats and prefill together: 0 -> 0.030. C waits for a seat; the counter holds it in
    iterations 2-4, lets it go in 5 (no seat: it stays), holds it in 6-8 and lets it go in 9, where A has left
    (A's 8th token ends iteration 8 at 0.030 + 7 x 14 ms = 0.128): C prefills beside B, 10 + 5 + 2 ms, first token
    at 0.145. A fast-forward run from iteration 5 to A's completion must replay that cycle (before the fix it
    restarted the counter at iteration 9 and held C three more steps: 0.181)."""
    rows = [(0.0, 10, 8), (0.0, 10, 40), (0.0, 5, 2)]
    sc = scenario(
        write_csv(tmp_path / "w.csv", rows),
        scheduler={"kind": "sarathi", "max_num_seqs": 2, "token_budget": 64},
        fast_forward=ff,
    )
    sc["serving_engine"] = {"kind": "trtllm", "admission_reserve": "none", "batch_wait_timeout_iters": 3}
    req = sim.run(sim.load_scenario(sc)).requests.sort_values("request_id")
    assert req["completion_s"].iloc[0] == pytest.approx(0.128, abs=1e-12)
    assert req["ttft_s"].iloc[2] == pytest.approx(0.145, abs=1e-12)

"""The fused hot paths of session 10 (issue 14) against the stepwise code they replace, bit for bit.

- `Cohort.step` writes `LogHistogram.add_one` and `Cohort.leave` inline. `_reference_step` below is the code
  before the fusion, built on those public methods. A hypothesis property drives both cohorts through the same joins
  and runs of steps and compares every member's fields, the aggregates and the histogram, flush points included (a
  tiny `FLUSH`, since the flush points decide how the histogram's running total is summed).
- `memo._plain_prefill_attn` prices prefill attention with the model's constants read once; it must equal
  `RooflineCost._prefill_attn` on every (new, cached) pair, for each model variant of `tests/test_costmemo.py`
  that takes it.
- `decode_run` prices a single affine decode step inline (`step_times`' two additions). Stepping takes only that
  path and fast-forward mostly `step_times`' runs, so the two must agree bit for bit on a scenario whose cost model
  is affine in context (a reassociated addition there moved 16 of the 29 shipped scenarios and no other test).
"""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.cluster.pools import build_cost_model
from sim.core.cohort import Cohort
from sim.core.recorder import LogHistogram
from sim.core.request import Request
from sim.costmodel.base import decode_coeffs
from sim.costmodel.memo import _plain_prefill_attn, memoised
from tests.helpers import same_result
from tests.test_costmemo import VARIANTS


def _reference_step(co: Cohort, k: int, first: float, last: float, itl: LogHistogram) -> tuple[int, list[Request]]:
    """`Cohort.step` as it was before the fusion (session 9): `add_one` and `leave` called, not inlined."""
    steps = co.steps
    if not co.reserved:
        new_blocks = co.blocks(0, k)
    elif k > 1:
        need = co.need
        ok = need is not None and need[1] == k and need[0] == steps
        new_blocks = need[2] if ok else co.blocks(1, k - 1)  # type: ignore[index]  # `ok`: need is set
    else:
        new_blocks = 0
    co.need = None
    n, fresh_count = co.n, co.fresh_count
    if n != fresh_count:
        itl.add_one(first - co.last_token, n - fresh_count)
    if fresh_count:
        for lt, c in co.fresh.items():
            itl.add_one(first - lt, c)
        co.fresh.clear()
        co.fresh_count = 0
    co.kv += n * k
    co.steps = steps = steps + k
    co.last_token = last
    co.reserved = False
    done = []
    heap = co.heap
    while heap and heap[0][0] <= steps:
        _, ticket, req = heapq.heappop(heap)
        if req.cohort_step >= 0 and req.cohort_ticket == ticket:
            co.leave(req)
            done.append(req)
    return new_blocks, done


def _member(i: int, kv: int, left: int, last: float) -> Request:
    r = Request(i, 0.0, kv, left + 1)
    r.kv_tokens, r.prefill_done, r.generated, r.last_token = kv, kv, 1, last
    return r


def _state(co: Cohort, members: list[Request], itl: LogHistogram) -> tuple[object, ...]:
    fields = [(r.generated, r.kv_tokens, r.last_token.hex(), r.blocks, r.cohort_step) for r in members]
    aggregates = (co.steps, co.n, co.kv, list(co.phase), co.fresh_count, dict(co.fresh), co.reserved, co.need)
    hist = (itl.counts.tolist(), itl.total.hex(), itl.n, list(itl._values), list(itl._weights), list(itl._counts))
    return fields, aggregates, hist


@settings(max_examples=150, deadline=None)
@given(
    block_size=st.sampled_from([1, 3, 16]),
    flush=st.integers(1, 6),
    rounds=st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 40), st.floats(0.0, 5.0)), max_size=4),  # joiners
            st.integers(1, 30),  # steps in the run
            st.booleans(),  # reserved (a planned step) or not
            st.floats(0.001, 0.05),  # step length
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_fused_cohort_step_equals_the_stepwise_one(
    block_size: int, flush: int, rounds: list[tuple[list[tuple[int, int, float]], int, bool, float]]
) -> None:
    cohorts = (Cohort(block_size), Cohort(block_size))
    hists = (LogHistogram(), LogHistogram())
    for h in hists:
        h.FLUSH = flush  # flush after every few values: the flush points must match too
    members: tuple[list[Request], list[Request]] = ([], [])
    t, i = 6.0, 0
    for joiners, k, reserved, dt in rounds:
        for kv, left, last in joiners:
            for co, ms in zip(cohorts, members, strict=True):
                r = _member(i, kv, left, last)
                co.join(r)
                ms.append(r)
            i += 1
        if not cohorts[0].n:
            continue
        first, t = t + dt, t + dt * k
        got = []
        for co, h, step in zip(cohorts, hists, (Cohort.step, _reference_step), strict=True):
            co.reserved = reserved
            new, done = step(co, k, first, t, h)
            got.append((new, [r.id for r in done]))
        assert got[0] == got[1]
        assert _state(cohorts[0], members[0], hists[0]) == _state(cohorts[1], members[1], hists[1])
    for h in hists:
        h._flush()
    assert _state(cohorts[0], members[0], hists[0]) == _state(cohorts[1], members[1], hists[1])


PLAIN = {name: f for name, cost in VARIANTS.items() if (f := _plain_prefill_attn(cost)) is not None}


def test_plain_prefill_attention_applies_where_the_model_uses_the_measured_efficiency() -> None:
    """At least the FlashAttention-efficiency variants take it; a model with other prefill pricing does not."""
    assert PLAIN, "no variant takes the plain prefill attention: the fused path went untested"
    for name in PLAIN:
        assert VARIANTS[name].attn_eff is not None


@pytest.mark.parametrize("name", sorted(PLAIN))
@settings(max_examples=200, deadline=None)
@given(q=st.integers(0, 20_000), c=st.integers(0, 200_000))
def test_plain_prefill_attention_is_the_models_own_bit_for_bit(name: str, q: int, c: int) -> None:
    assert PLAIN[name](q, c).hex() == float(VARIANTS[name]._prefill_attn(q, c)).hex()


@pytest.mark.parametrize("scheduler", ["{kind: fcfs}", "{kind: sarathi, max_num_seqs: 64, token_budget: 256}"])
def test_inline_affine_step_is_step_times_own(scheduler: str) -> None:
    """The quickstart model and GPU (affine decode pricing: `decode_coeffs` is not None) with fast-forward on and
    off: requests, timeline, counts, per-instance totals and ITL sums bit for bit."""
    over = ["workload.num_requests=400", "cluster.instances=2", f"scheduler={scheduler}"]
    cost = memoised(build_cost_model(sim.load_scenario("scenarios/quickstart.yaml", over)))
    assert decode_coeffs(cost, 8) is not None, "the scenario no longer prices decode affinely: pick another"
    ff, step = (
        sim.run(sim.load_scenario("scenarios/quickstart.yaml", [*over, f"engine.fast_forward={on}"]))
        for on in ("true", "false")
    )
    same_result(ff, step, itl=True)
    assert ff.summary["sim"]["events"] < step.summary["sim"]["events"]  # fast-forward did run

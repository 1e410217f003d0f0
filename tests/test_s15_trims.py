"""Session 15's exact trims of the compiled hot paths (benchmarks/SPEED.md, s15-speed), each against what it replaces.

- `Cohort.due` is a lower bound on the cohort's next completion step: `Cohort.step` reads its heap only from there
  on. Hand-counted completions, joins that come due before the heap's old top, and a random sequence against a
  cohort whose `due` is forced to 0 (the heap read at every step, as before).
- `RequestLog` buffers stored requests and writes them into its arrays in bulk: every array read sees every store,
  in store order with the statuses written in place (reject, abandon), across flushes and `truncate`.
- `MemoCost._direct` (compiled: prefill attention computed, not looked up) prices as the cached path and as the real
  model, bit for bit, both ways on every variant that takes the plain attention.
- `Instance.finish` removes a single completion by identity, as `list.remove` did.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.core.cohort import NEVER, Cohort
from sim.core.recorder import ABANDONED, COMPLETED, PENDING, REJECTED, LogHistogram, RequestLog
from sim.core.request import Request
from sim.costmodel.memo import MemoCost, _plain_prefill_attn, memoised
from tests.test_costmemo import VARIANTS


def _member(i: int, left: int, kv: int = 100) -> Request:
    r = Request(i, 0.0, kv, left + 1)
    r.kv_tokens, r.prefill_done, r.generated, r.last_token = kv, kv, 1, 0.0
    return r


def test_completions_come_at_their_hand_counted_steps_and_due_follows_them() -> None:
    co, itl = Cohort(16), LogHistogram()
    a, b, c, d = (_member(i, left) for i, left in enumerate((3, 5, 5, 9)))
    for r in (a, b, c, d):
        co.join(r)
    assert co.due <= 3  # a lower bound on the least completion step (3: a's)
    got = [co.step(1, t, t, itl)[1] for t in (1.0, 2.0, 3.0)]
    assert got == [[], [], [a]] and co.due == 5
    assert co.step(1, 4.0, 4.0, itl)[1] == [] and co.due == 5
    late = _member(4, 1)  # joins after 4 steps with one token left: due at step 5 too
    co.join(late)
    assert sorted(r.id for r in co.step(1, 5.0, 5.0, itl)[1]) == [1, 2, 4] and co.due == 9
    e = _member(5, 2)  # due at step 7, before the heap's top (9): the join lowers `due`, else step 7 would miss it
    co.join(e)
    assert co.due == 7
    assert co.step(2, 6.0, 7.0, itl)[1] == [e] and co.due == 9
    assert co.step(2, 8.0, 9.0, itl)[1] == [d] and co.n == 0 and co.due == NEVER
    assert (a.generated, b.generated, e.generated, d.generated) == (4, 6, 3, 10)  # every token counted once


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 12)), min_size=1, max_size=40))
def test_a_random_cohort_finishes_as_one_that_reads_its_heap_every_step(ops: list[tuple[int, int]]) -> None:
    """`due` forced to 0 before every step makes `step` read its heap top each time (the code before the trim)."""
    cohorts, hists = [Cohort(16), Cohort(16)], [LogHistogram(), LogHistogram()]
    members: list[list[object]] = [[], []]
    t = 0.0
    for i, (op, x) in enumerate(ops):
        for side in (0, 1):
            co = cohorts[side]
            if op == 0 or co.n == 0:  # a joiner with x tokens left
                r = _member(i, x, kv=7 * x)
                r.last_token = t
                members[side].append(r)
                co.join(r)
            else:
                if side == 1:
                    co.due = 0
                k = min(x, co.steps_to_completion())
                new, done = co.step(k, t + 1.0, t + k, hists[side])
                members[side].append(([(r.id, r.generated) for r in done], new))
        t += 12.0
    same = [[(m.id, m.generated, m.kv_tokens) if isinstance(m, Request) else m for m in ms] for ms in members]
    assert same[0] == same[1]
    assert (cohorts[0].steps, cohorts[0].n, cohorts[0].kv) == (cohorts[1].steps, cohorts[1].n, cohorts[1].kv)
    assert list(hists[0]._values) == list(hists[1]._values)


def _req(i: int, out: int) -> Request:
    r = Request(i, 0.5 * i, 10, out)
    r.first_scheduled, r.first_token, r.completion = 1.0 + i, 2.0 + i, 3.0 + i
    r.generated, r.preemptions, r.instance = out, i % 3, i % 4
    return r


def test_the_log_shows_every_store_at_every_read_in_store_order() -> None:
    log = RequestLog(6)
    reqs = [_req(i, 5 + i) for i in range(6)]
    for r in reqs:
        log.arrived(r)
    log.complete(reqs[3])
    assert log.status[3] == COMPLETED and log.completion[3] == 6.0 and log.generated[3] == 8  # read: synced
    log.complete(reqs[0])
    log.reject(reqs[1], "exceeds_kv_cache")  # written in place after the buffered completion of 0
    log.abandon(reqs[2])  # status now, fields when it is let go
    assert list(log.status) == [COMPLETED, REJECTED, ABANDONED, COMPLETED, PENDING, PENDING]
    reqs[2].completion = 9.0
    log.let_go(reqs[2])
    log.complete(reqs[5])
    assert log.status[2] == ABANDONED and math.isnan(log.completion[2])  # `let_go` stores no completion
    assert log.first_token[5] == 7.0 and log.preemptions[5] == 2 and log.instance[5] == 1
    assert log.first_scheduled[0] == 1.0 and log.reason[1] == 2 and log.done == 5
    log.complete(reqs[4])
    log.truncate(5)  # buffered stores are kept
    assert list(log.status) == [COMPLETED, REJECTED, ABANDONED, COMPLETED, COMPLETED]
    assert log.generated.tolist() == [5, 6, 7, 8, 9] and len(log.completion) == 5


def test_the_log_flushes_its_buffer_when_full() -> None:
    n = RequestLog.FLUSH + 3
    log = RequestLog(n)
    for i in range(n):
        r = _req(i, 1 + i % 7)
        log.arrived(r)
        log.complete(r)
    assert len(log._ids) == 3  # one bulk write at FLUSH requests, 3 buffered since
    assert np.array_equal(log.generated, 1 + np.arange(n) % 7) and (log.status == COMPLETED).all()
    assert np.array_equal(log.completion, 3.0 + np.arange(n)) and not log._ids


PLAIN = sorted(name for name, cost in VARIANTS.items() if _plain_prefill_attn(cost) is not None)


@pytest.mark.parametrize("name", PLAIN)
@settings(max_examples=30, deadline=None)
@given(
    q=st.integers(1, 2048),
    c0=st.integers(0, 16384),
    n=st.integers(0, 300),
    per_seq_ctx=st.integers(1, 8000),
    k=st.integers(1, 30),
    last=st.integers(1, 2048),
    extra=st.lists(st.tuples(st.integers(1, 1024), st.integers(0, 16384)), min_size=1, max_size=3),
)
def test_direct_prefill_attention_prices_as_the_cache_and_the_model(
    name: str, q: int, c0: int, n: int, per_seq_ctx: int, k: int, last: int, extra: list[tuple[int, int]]
) -> None:
    cost = VARIANTS[name]
    memos = [m for m in (memoised(cost), memoised(cost)) if isinstance(m, MemoCost)]
    assert len(memos) == 2
    memos[0]._direct, memos[1]._direct = _plain_prefill_attn(cost), None
    last = min(last, q) if k > 1 else q
    ctx = n * per_seq_ctx
    for _ in range(2):  # fresh, then from the rows
        direct, cached = (
            [x.hex() for x in ts + ds] for ts, ds in (m.chunk_steps(0.0, q, c0, n, ctx, k, last) for m in memos)
        )
        assert direct == cached
        many = [(q, c0), *extra]
        for m in memos:
            assert m.iteration([(q, c0)], n, ctx).hex() == cost.iteration([(q, c0)], n, ctx).hex()
            assert m.iteration(many, n, ctx).hex() == cost.iteration(many, n, ctx).hex()
    assert not any(m.diverged for m in memos)


def test_finish_removes_the_one_completion_by_identity() -> None:
    from sim.core.engine import Simulation

    s = Simulation(sim.load_scenario("scenarios/quickstart.yaml", ["workload.num_requests=40"]))
    inst = s.instances[0]
    reqs = [_req(i, 3) for i in range(5)]
    for r in reqs:
        s.log.arrived(r)
    inst.running.extend(reqs)
    inst.finish([reqs[2]])
    assert inst.running == [reqs[0], reqs[1], reqs[3], reqs[4]] and s.log.status[2] == COMPLETED
    with pytest.raises(ValueError):
        inst.finish([reqs[2]])


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 300),
    ctx0=st.integers(0, 1_000_000),
    k=st.integers(2, 60),
    a=st.floats(1e-4, 1e-1),
    b=st.floats(1e-9, 1e-6),
    t=st.floats(0.0, 1e4),
    extra=st.sampled_from([0.0, 1e-3, 3.3e-5]),
)
def test_the_compiled_decode_loop_gives_map_and_numpys_floats(
    n: int, ctx0: int, k: int, a: float, b: float, t: float, extra: float
) -> None:
    """`step_times`' plain loop (taken compiled; forced here when interpreted) against the two paths it replaces:
    `map`/`accumulate` up to `PLAIN_STEPS` steps, numpy beyond."""
    from itertools import accumulate

    from sim.core import clock

    contexts = range(ctx0 + n, ctx0 + n * k + 1, n)
    if k <= clock.PLAIN_STEPS:
        steps = [a + b * c for c in contexts]
        steps[0] = steps[0] + extra if extra else steps[0]
        want = list(accumulate(steps, initial=t))[1:]
    else:
        arr = np.arange(ctx0 + n, ctx0 + n * k + 1, n, dtype=np.float64) * b + a
        arr[0] = t + (arr[0] + extra if extra else arr[0])
        want = np.add.accumulate(arr).tolist()
    saved = clock._COMPILED
    try:
        clock._COMPILED = True  # type: ignore[misc]  # (compiled, the module's own constant: already True)
        got, arr_out = clock.step_times(None, t, n, ctx0, k, extra, (a, b))  # type: ignore[arg-type]  # (no cost model: the coefficients are given)
    finally:
        clock._COMPILED = saved  # type: ignore[misc]  # (restored: a Final of the module)
    assert arr_out is None and [x.hex() for x in got] == [x.hex() for x in want]

"""Chunk runs (`sim.core.steps.chunk_run`): iterations of every decoder plus one long prompt's chunk, taken k at a
time, give the very same requests table, iteration count and timeline as stepping them one by one — with KV
pressure (recompute and swap), several instances, arrivals cutting runs and a horizon landing inside one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from policies.continuous import Sarathi
from tests.helpers import same_result, scenario, write_csv

ROOFLINE = {"kind": "roofline", "iteration_overhead_s": 0.001}  # per-step prices depend on context and chunk


def _workload(n: int, seed: int, rate: float) -> list[tuple[float, int, int]]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    p = rng.integers(1, 700, n)  # prompts of up to ~15 chunks at the budgets below
    o = np.minimum(200, np.maximum(1, rng.lognormal(3.0, 1.0, n).astype(int)))
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True)]


def _run(tmp_path: Any, reqs: list[tuple[float, int, int]], *, ff: bool, **kw: Any) -> sim.Result:
    budget, horizon, preemption = kw.pop("budget"), kw.pop("horizon", None), kw.pop("preemption", "recompute")
    sc = scenario(
        write_csv(tmp_path / "w.csv", sorted(reqs)),
        scheduler={"kind": "sarathi", "token_budget": budget, "max_num_seqs": 8},
        fast_forward=ff,
        preemption=preemption,
        **kw,
    )
    if horizon is not None:
        sc["engine"]["horizon_s"] = horizon
    return sim.run(sc)


def test_chunk_runs_skip_events_and_change_nothing(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reqs = _workload(80, 3, rate=8.0)
    kw = {"budget": 48, "kv_blocks": 60, "cost": ROOFLINE}
    runs = _run(tmp_path, reqs, ff=True, **kw)
    off = _run(tmp_path, reqs, ff=False, **kw)
    monkeypatch.delattr(Sarathi, "chunk_horizon")
    decode_runs_only = _run(tmp_path, reqs, ff=True, **kw)
    same_result(runs, off)
    same_result(runs, decode_runs_only)
    # the chunk runs took many steps in one event each: fewer events than decode runs alone
    assert runs.summary["sim"]["events"] < 0.8 * decode_runs_only.summary["sim"]["events"]
    assert runs.summary["counts"]["completed"] == len(reqs)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([2.0, 20.0, 200.0]),
    budget=st.integers(8, 96),
    kv=st.integers(48, 400),
    instances=st.integers(1, 2),
    preemption=st.sampled_from(["recompute", "swap"]),
    horizon=st.one_of(st.none(), st.floats(0.05, 6.0)),
)
def test_chunk_runs_equal_stepping(
    tmp_path: Any, seed: int, rate: float, budget: int, kv: int, instances: int, preemption: str, horizon: float | None
) -> None:
    reqs = _workload(30, seed, rate)
    kw = {"budget": budget, "kv_blocks": kv, "instances": instances, "preemption": preemption, "horizon": horizon}
    a = _run(tmp_path, reqs, ff=True, cost=ROOFLINE, **kw)
    b = _run(tmp_path, reqs, ff=False, cost=ROOFLINE, **kw)
    same_result(a, b)


def _state(s: Any) -> list[Any]:
    """Every instance's exact state after a run: clock, counters, free blocks, each running request's fields."""
    out: list[Any] = []
    for inst in s.instances:
        reqs = [(r.id, r.prefill_done, r.kv_tokens, r.generated, r.blocks, r.last_token) for r in inst.running]
        out.append((inst.t, inst.iterations, inst.tokens_out, inst.allocator.free, reqs, len(inst.waiting)))
    return out


@pytest.mark.parametrize("at", [0.13, 0.5, 0.77, 0.98])
def test_horizon_inside_a_chunk_run_credits_the_steps_behind(tmp_path: Any, at: float) -> None:
    from sim.core.engine import Simulation

    reqs = [(0.0, 30, 400), (0.0, 2000, 5)]  # one decoder beside a long prompt: one long chunk run
    base = scenario(
        write_csv(tmp_path / "w.csv", reqs), scheduler={"kind": "sarathi", "token_budget": 40}, cost=ROOFLINE
    )
    first_token = sim.run(base).requests["first_token_s"].to_numpy()
    horizon = first_token[0] + at * (first_token[1] - first_token[0])  # while the long prompt is chunked
    states = []
    for ff in (True, False):
        sc = {**base, "engine": {"fast_forward": ff, "horizon_s": horizon}}
        s = Simulation(sim.load_scenario(sc)).run()
        states.append(_state(s))
        assert any(r.prefill_done < r.prefill_target for inst in s.instances for r in inst.running)
    assert repr(states[0]) == repr(states[1])  # bit for bit, NaN (a cohort's idle `last_token`) equal to NaN


def test_chunk_runs_take_the_prompts_remainder_along(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prompt that is no whole number of chunks ends its chunk run with its remainder (`Sarathi.chunk_tail`):
    one event fewer per prompt, the same tables as without it and as stepping."""
    reqs = [(0.0, 30, 400)] + [(5.0 * i, 700 + 13 * i, 5) for i in range(8)]  # spaced: nobody queues behind
    kw = {"budget": 48, "cost": ROOFLINE}
    tails = _run(tmp_path, reqs, ff=True, **kw)
    same_result(tails, _run(tmp_path, reqs, ff=False, **kw))
    monkeypatch.delattr(Sarathi, "chunk_tail")
    no_tails = _run(tmp_path, reqs, ff=True, **kw)
    same_result(tails, no_tails)
    assert tails.summary["sim"]["events"] <= no_tails.summary["sim"]["events"] - 8


@pytest.mark.parametrize("at", [0.3, 0.97, 0.995, 1.01])
def test_arrival_before_the_remainder_cuts_it_off(tmp_path: Any, at: float) -> None:
    """A request arriving before the remainder's step is admitted beside the remainder (stepping plans it so),
    one arriving during that step waits for the next: the chunk run drops its last step in the first case."""
    reqs = [(0.0, 30, 400), (0.0, 2005, 5)]  # one decoder beside a long prompt of 51 chunks and a remainder
    first = _run(tmp_path, reqs, ff=True, budget=40, cost=ROOFLINE).requests["first_token_s"].to_numpy()
    late = (float(first[0] + at * (first[1] - first[0])), 50, 5)
    a = _run(tmp_path, [*reqs, late], ff=True, budget=40, cost=ROOFLINE)
    b = _run(tmp_path, [*reqs, late], ff=False, budget=40, cost=ROOFLINE)
    same_result(a, b)


# -- vllm: KV blocks allocated per scheduled chunk (`policies.vllm`, `steps.chunk_growth`) --------------------------
def _vllm(tmp_path: Any, reqs: list[tuple[float, int, int]], *, ff: bool, **kw: Any) -> sim.Result:
    budget, seqs, caching = kw.pop("budget"), kw.pop("seqs", 8), kw.pop("caching", True)
    horizon, system = kw.pop("horizon", None), kw.pop("system_prompt", None)
    sched = {"kind": "vllm", "max_num_batched_tokens": budget, "max_num_seqs": min(seqs, budget)}
    sched["enable_prefix_caching"] = caching
    sc = scenario(write_csv(tmp_path / "w.csv", sorted(reqs)), scheduler=sched, fast_forward=ff, cost=ROOFLINE, **kw)
    if system is not None and caching:
        sc["kv_cache"]["prefix_cache"] = {"system_prompt_tokens": system}
    if horizon is not None:
        sc["engine"]["horizon_s"] = horizon
    return sim.run(sc)


@pytest.mark.parametrize("caching", [False, True])
def test_vllm_chunk_runs_under_kv_pressure_equal_stepping(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caching: bool
) -> None:
    """Chunks that take their blocks one by one: the runs stop before a chunk (or a decoder's slot) would not
    fit, so the preemptions, the timeline's KV gauge and every table equal stepping's; and the runs happened."""
    from policies.vllm import VLLMScheduler

    reqs = _workload(80, 3, rate=8.0)
    kw = {"budget": 48, "kv_blocks": 60, "caching": caching}
    runs = _vllm(tmp_path, reqs, ff=True, **kw)
    off = _vllm(tmp_path, reqs, ff=False, **kw)
    same_result(runs, off)
    assert runs.requests["preemptions"].sum() > 0  # the cache was short: the bound mattered
    monkeypatch.setattr(VLLMScheduler, "chunk_horizon", lambda self, inst, plan: 1, raising=False)
    decode_runs_only = _vllm(tmp_path, reqs, ff=True, **kw)
    same_result(runs, decode_runs_only)
    assert runs.summary["sim"]["events"] < 0.8 * decode_runs_only.summary["sim"]["events"]


def test_vllm_chunk_growth_is_the_per_chunk_allocation() -> None:
    """Hand-computed: a 100-token prompt in chunks of 24 with blocks of 16 holds ceil(24/16) = 2 blocks after
    its first chunk; after chunk j + 1 it needs ceil(24 (j + 1)/16), the last chunk covering ceil(100/16) = 7."""
    from sim.core.request import Request
    from sim.core.steps import chunk_growth

    req = Request(0, 0.0, 100, 5)
    req.blocks = 2  # step 0's chunk was reserved by the plan
    assert [chunk_growth(req, 24, j, 16) for j in range(5)] == [0, 3 - 2, 5 - 2, 6 - 2, 7 - 2]
    req.blocks = 7  # a scheduler that reserved the whole prompt on admission: nothing grows
    assert [chunk_growth(req, 24, j, 16) for j in range(5)] == [0] * 5


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([2.0, 20.0, 200.0]),
    budget=st.integers(8, 96),
    kv=st.integers(48, 400),
    instances=st.integers(1, 2),
    preemption=st.sampled_from(["recompute", "swap"]),
    caching=st.booleans(),
    system=st.sampled_from([None, 16, 40, 96]),
    horizon=st.one_of(st.none(), st.floats(0.05, 6.0)),
)
def test_vllm_chunk_runs_equal_stepping(
    tmp_path: Any,
    seed: int,
    rate: float,
    budget: int,
    kv: int,
    instances: int,
    preemption: str,
    caching: bool,
    system: int | None,
    horizon: float | None,
) -> None:
    reqs = _workload(30, seed, rate)
    kw = {"budget": budget, "kv_blocks": kv, "instances": instances, "preemption": preemption}
    kw.update(caching=caching, system_prompt=system, horizon=horizon)
    a = _vllm(tmp_path, reqs, ff=True, **kw)
    b = _vllm(tmp_path, reqs, ff=False, **kw)
    same_result(a, b)
    if caching:
        pa, pb = a.summary.get("prefix_cache"), b.summary.get("prefix_cache")
        assert pa == pb  # hits, registered blocks, evictions, blocks cached at the end

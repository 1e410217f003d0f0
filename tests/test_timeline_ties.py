"""The timeline's samples at an instant where a step also ends: a fast-forward run's last step and stepping's
must look the same to the sampler (it samples before the instant's other events), whatever the event ids."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from tests.helpers import same_result, scenario, write_csv

SARATHI = {"kind": "sarathi", "token_budget": 64, "max_num_seqs": 8}


def _run(tmp_path: Any, rows: list[tuple[float, int, int]], ff: bool, **kw: Any) -> sim.Result:
    return sim.run(scenario(write_csv(tmp_path / "w.csv", sorted(rows)), fast_forward=ff, **kw))


def test_sample_at_a_chunk_runs_completion_equals_stepping(tmp_path: Any) -> None:
    # linear cost (helpers): chunk 64 = 0.01 + 0.064 s, chunk 16 = 0.01 + 0.016 s, so the prompt completes at
    # 0.074 + 0.026 = 0.1 s, exactly the third sample (interval 0.05 s). The chunk run scheduled its end at 0 s,
    # before the sampler's tick (scheduled at 0.05 s); stepping scheduled the second chunk at 0.074 s, after it.
    a = _run(tmp_path, [(0.0, 80, 1)], True, scheduler=SARATHI)
    b = _run(tmp_path, [(0.0, 80, 1)], False, scheduler=SARATHI)
    assert a.requests["completion_s"].tolist() == [0.1]
    same_result(a, b)
    last = a.timeline.iloc[-1]  # the sample at 0.1 s is taken before the completion at 0.1 s
    assert (last["time_s"], last["kv_used_blocks"], last["running"], last["waiting"]) == (0.1, 5, 1, 0)


@pytest.mark.parametrize("prompt", [40, 44, 45, 46, 47])
def test_samples_on_a_decode_runs_step_ends_equal_stepping(tmp_path: Any, prompt: int) -> None:
    """fcfs, linear cost: prefill ends at 0.01 + 0.001 x prompt, then each decode step takes 0.012 s (one
    sequence), all in one decode run. With the sampling interval equal to a step end, samples land on step ends
    inside the run; some of them fall where the next step needs a new KV block. Stepping, sampled before the
    step's event, shows that block not yet taken; the run's gauge must too (`kv_used_blocks(before_now=True)`)."""
    t = 0.01 + 0.001 * prompt
    ends = []
    for _ in range(8):
        t = t + 0.012  # the same float additions as the engine's step ends
        ends.append(t)
    for interval in ends:
        runs = []
        for ff in (True, False):
            sc = scenario(write_csv(tmp_path / "w.csv", [(0.0, prompt, 14)]), fast_forward=ff, kv_blocks=50)
            sc["engine"]["timeline_interval_s"] = interval
            runs.append(sim.run(sc))
        a, b = runs
        assert set(a.timeline["time_s"].tolist()[1:]) & set(ends)  # the samples do tie with step ends
        assert a.summary["sim"]["events"] < b.summary["sim"]["events"]  # and the decode steps ran as a run
        same_result(a, b)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.3]), st.integers(1, 200), st.integers(1, 12)),
        min_size=1,
        max_size=8,
    ),
    budget=st.sampled_from([16, 32, 64]),
    kv=st.integers(20, 200),
)
def test_round_number_timelines_equal_stepping(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[float, int, int]], budget: int, kv: int
) -> None:
    """The linear cost's round step prices and arrivals on the sample grid make many exact ties."""
    tmp = tmp_path_factory.mktemp("t")
    sched = {"kind": "sarathi", "token_budget": budget, "max_num_seqs": 8}
    same_result(
        _run(tmp, rows, True, scheduler=sched, kv_blocks=kv), _run(tmp, rows, False, scheduler=sched, kv_blocks=kv)
    )

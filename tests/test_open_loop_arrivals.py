"""The open-loop arrivals loop has two copies (`sim.core.engine.Simulation._arrivals`): the general one that
calls `_request`/`_issue` and reports progress, and the usual run's, with both inlined. A progress callback that
does nothing forces the general copy; the two must give the very same run, bit for bit, on any workload."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.core.engine import general_arrivals
from tests.helpers import same_result, scenario, write_csv
from tests.strategies import examples

SCHEDULERS: list[dict[str, Any]] = [
    {"kind": "fcfs"},
    {"kind": "sarathi", "token_budget": 64, "max_num_seqs": 8},
    {"kind": "vllm", "max_num_batched_tokens": 64, "max_num_seqs": 8, "enable_prefix_caching": True},
]


def _rows(seed: int, n: int, rate: float, ties: bool) -> list[tuple[float, int, int]]:
    """Poisson arrivals; with `ties`, rounded to 0.1 s so that several requests arrive at the same instant."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    if ties:
        t = np.round(t, 1)
    p = rng.integers(1, 300, n)
    o = rng.integers(1, 60, n)
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True)]


def _run(sc: dict[str, Any], calls: list[tuple[int, int]] | None) -> sim.Result:
    """`sim.run` without a progress callback (the inlined loop), or with one that only records its calls."""
    if calls is None:
        return sim.run(sc)

    def progress(i: int, n: int) -> None:
        calls.append((i, n))

    return sim.run(sc, progress=progress)


@settings(max_examples=examples(25), deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    rate=st.sampled_from([1.0, 30.0, 500.0]),
    ties=st.booleans(),
    sched=st.sampled_from(range(len(SCHEDULERS))),
    router=st.sampled_from(["round_robin", "least_requests", "random", "power_of_two", "least_kv"]),
    instances=st.integers(1, 3),
    kv=st.integers(40, 400),
    system_prompt=st.one_of(st.none(), st.integers(16, 128)),
)
def test_inlined_arrivals_equal_the_general_loop(
    tmp_path_factory: Any,
    seed: int,
    n: int,
    rate: float,
    ties: bool,
    sched: int,
    router: str,
    instances: int,
    kv: int,
    system_prompt: int | None,
) -> None:
    rows = sorted(_rows(seed, n, rate, ties))
    trace = write_csv(tmp_path_factory.mktemp("w") / "w.csv", rows)
    sc = scenario(
        trace,
        scheduler=SCHEDULERS[sched],
        router=router,
        instances=instances,
        kv_blocks=kv,
        system_prompt=system_prompt,
        cost={"kind": "roofline", "iteration_overhead_s": 0.001},
    )
    calls: list[tuple[int, int]] = []
    fast, general = _run(sc, None), _run(sc, calls)
    same_result(fast, general, itl=True)
    assert fast.summary["sim"]["events"] == general.summary["sim"]["events"]
    assert calls and calls[-1] == (n, n)  # the callback ran: the general loop was taken


def test_a_progress_callback_takes_the_general_loop(tmp_path: Any) -> None:
    """The property above compares two different loops only if the callback really switches loops: the choice
    (`general_arrivals`) takes the general loop with a callback or a timeout and the inlined one without, and the
    run with a callback reports after every request (tick 1 at 10 requests), which only the general loop does (the
    inlined one reports once, at the end). No patch of `Simulation`: the compiled core would not see one."""
    assert not general_arrivals(None, None)
    assert general_arrivals(lambda i, n: None, None) and general_arrivals(None, 5.0)
    sc = scenario(write_csv(tmp_path / "w.csv", _rows(1, 10, 5.0, False)))
    calls: list[tuple[int, int]] = []
    assert sim.run(sc, progress=lambda i, n: calls.append((i, n))).summary["counts"]["completed"] == 10
    assert calls == [(i, 10) for i in range(1, 11)] + [(10, 10)]

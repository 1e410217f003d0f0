"""`serving_engine.overlap_admission`: an engine that schedules one step ahead admits a prompt that arrives while a
step runs one step later (`sim.core.instance.Instance._lagged`). Hand-computed on the linear cost model (iteration =
0.01 + 0.001/prefill token + 0.002/decoding sequence, tests/helpers.py), the presets' values, and properties on
random workloads: with the lag on, fast-forward (decode, chunk and onward runs) equals stepping bit for bit.

The field applies with the physical cost models only (`prices_serving_engine`: `linear` is an exact service time);
the hand-computed cases lift that gate (`_overlap_on_linear`) so the real field, set in the scenario, reaches the
instance with exact costs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
import sim.cluster.pools as pools
from sim.core.engine import Simulation
from sim.costmodel.engine import preset
from sim.output.perfetto import Tracer
from tests.helpers import same_result, scenario, write_csv

ROOFLINE = {"kind": "roofline", "iteration_overhead_s": 0.001}  # per-step prices depend on batch, context, chunk
LAG = {"kind": "vllm-v1", "overlap_admission": True}


@pytest.fixture
def _overlap_on_linear(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine's terms priced with the linear cost model too (only the instance reads them: linear takes no
    engine, and the client's view keeps its own gate)."""
    monkeypatch.setattr(pools, "prices_serving_engine", lambda cfg: True)
    yield


def _ttfts(tmp_path: Path, rows: list[tuple[float, int, int]], on: bool, **kw: Any) -> list[float]:
    sc = scenario(
        write_csv(tmp_path / "w.csv", rows), serving_engine={"kind": "vllm-v0", "overlap_admission": on}, **kw
    )
    res = sim.run(sc)
    return [float(x) for x in res.requests.sort_values("arrival_s")["ttft_s"]]


@pytest.mark.usefixtures("_overlap_on_linear")
@pytest.mark.parametrize("ff", [True, False])
def test_prompt_arriving_mid_decode_waits_exactly_one_more_decode_step(tmp_path: Path, ff: bool) -> None:
    """r1 (0 s, 100 tokens, 20 out): prefill 0.01 + 0.1 = 0.110 s, then 1-sequence decode steps of 0.012 s ending
    at 0.122, 0.134, 0.146, 0.158. r2 (0.150 s) arrives during the step ending at 0.158. Off: `fcfs` prefills it
    next, alone: 0.01 + 0.1 = 0.110 s, first token at 0.268, TTFT 0.118. On: the plan at 0.158 was made before it
    came: one more decode step (0.012 s), first token at 0.280, TTFT 0.130. r1 arrived at an idle instance: no lag.
    The arrival cuts a fast-forwarded decode run; stepping gives the same."""
    rows = [(0.0, 100, 20), (0.150, 100, 5)]
    assert _ttfts(tmp_path, rows, on=False, fast_forward=ff) == pytest.approx([0.110, 0.118], abs=1e-9)
    assert _ttfts(tmp_path, rows, on=True, fast_forward=ff) == pytest.approx([0.110, 0.130], abs=1e-9)


@pytest.mark.usefixtures("_overlap_on_linear")
def test_an_arrival_cuts_a_decode_run_one_step_later_with_the_lag(tmp_path: Path) -> None:
    """The case above, fast-forwarded: r2 (0.150 s) lands in the run's step ending at 0.158. Off, the run is cut
    there and the plan at 0.158 prefills r2. On, the plan at 0.158 hides r2 and is the run's own next step, so the
    run is cut one step later, at 0.170 (`_truncate(lag=1)`): as many events as without the lag (22; cutting at
    0.158 would add a one-step plan and its wake-up), 21 steps, first tokens 0.110 and 0.130, and 37 events when
    stepped."""
    rows = [(0.0, 100, 20), (0.150, 100, 5)]
    out = {}
    for on in (False, True):
        for ff in (True, False):
            sc = scenario(
                write_csv(tmp_path / "w.csv", rows),
                serving_engine={"kind": "vllm-v0", "overlap_admission": on},
                fast_forward=ff,
            )
            res = sim.run(sc)
            out[on, ff] = (res.summary["sim"]["events"], res.summary["sim"]["iterations"])
            ttft = [float(x) for x in res.requests.sort_values("arrival_s")["ttft_s"]]
            assert ttft == pytest.approx([0.110, 0.130 if on else 0.118], abs=1e-9)
    assert out == {(False, True): (22, 21), (True, True): (22, 21), (False, False): (37, 21), (True, False): (37, 21)}


@pytest.mark.usefixtures("_overlap_on_linear")
def test_prompt_arriving_during_a_prefill_waits_one_more_step(tmp_path: Path) -> None:
    """r1 (0 s, 100 tokens, 3 out) prefills until 0.110. r2 (0.05 s, 50 tokens, 2 out) arrives during it. Off: at
    0.110 `fcfs` prefills r2 with r1 waiting: 0.01 + 0.05 = 0.060 s to 0.170, TTFT 0.120. On: the plan at 0.110
    hides r2, so r1 decodes alone (0.012 s, to 0.122); then r2's prefill (0.060 s) ends at 0.182: TTFT 0.132."""
    rows = [(0.0, 100, 3), (0.05, 50, 2)]
    assert _ttfts(tmp_path, rows, on=False) == pytest.approx([0.110, 0.120], abs=1e-9)
    assert _ttfts(tmp_path, rows, on=True) == pytest.approx([0.110, 0.132], abs=1e-9)


@pytest.mark.usefixtures("_overlap_on_linear")
def test_prompt_arriving_at_an_idle_instance_has_no_lag(tmp_path: Path) -> None:
    """r1 finishes at 0.110 + 4 x 0.012 = 0.158 s (5 tokens); r2 arrives at 0.5 s on an idle instance: TTFT 0.110
    s either way (an idle engine's loop schedules a new request at once)."""
    rows = [(0.0, 100, 5), (0.5, 100, 5)]
    assert _ttfts(tmp_path, rows, on=True) == pytest.approx([0.110, 0.110], abs=1e-9)


@pytest.mark.usefixtures("_overlap_on_linear")
@pytest.mark.parametrize("ff", [True, False])
def test_prompt_arriving_during_an_onward_run_waits_one_step(tmp_path: Path, ff: bool) -> None:
    """r1 (0 s, 100 tokens, 3 out) and r2 (0 s, 100 tokens, 30 out): prefilled together in 0.01 + 0.2 = 0.210 s;
    two decode steps of 0.014 s (0.224, 0.238: r1 done), then r2 alone, 0.012 s a step, from 0.238: an onward run
    past r1's completion when fast-forwarding. r3 (0.300 s, 50 tokens, 2 out) arrives during the step 0.298-0.310.
    Off: prefilled at 0.310 alone (0.01 + 0.05 = 0.060 s; `fcfs` prefills before decoding) to 0.370: TTFT 0.070.
    On: the plan at 0.310 hides it: one more decode step (to 0.322), its prefill ends at 0.382: TTFT 0.082."""
    rows = [(0.0, 100, 3), (0.0, 100, 30), (0.300, 50, 2)]
    assert _ttfts(tmp_path, rows, on=False, fast_forward=ff) == pytest.approx([0.210, 0.210, 0.070], abs=1e-9)
    assert _ttfts(tmp_path, rows, on=True, fast_forward=ff) == pytest.approx([0.210, 0.210, 0.082], abs=1e-9)


def test_linear_cost_model_ignores_the_field(tmp_path: Path) -> None:
    """Without the gate lifted, `linear` is an exact service time: the field on gives the off numbers."""
    rows = [(0.0, 100, 20), (0.150, 100, 5)]
    assert _ttfts(tmp_path, rows, on=True) == pytest.approx([0.110, 0.118], abs=1e-9)


@pytest.mark.usefixtures("_overlap_on_linear")
def test_a_hidden_prompt_can_make_another_first_token_earlier(tmp_path: Path) -> None:
    """Why "TTFT on >= TTFT off" is no property: hiding a prompt also keeps it out of a step that others share.
    `sarathi` (512-token budget): r1, r2, r3 (1, 212, 300 tokens, 1 out) at 0 s; the first step takes 1 + 212 +
    299 tokens: 0.01 + 0.512 = 0.522 s. r4 (1 token) arrives at 0.5 s during it. Off: the step at 0.522 holds r3's
    last token and r4's: 0.012 s, r3's first token at 0.534, r4's TTFT 0.534 - 0.5 = 0.034. On: r4 is hidden, r3's
    last token alone takes 0.011 s (0.533: r3 is 1 ms EARLIER), then r4's 0.011 s: TTFT 0.544 - 0.5 = 0.044."""
    rows = [(0.0, 1, 1), (0.0, 212, 1), (0.0, 300, 1), (0.5, 1, 1)]
    kw: dict[str, Any] = {"scheduler": {"kind": "sarathi"}}
    assert _ttfts(tmp_path, rows, on=False, **kw) == pytest.approx([0.522, 0.522, 0.534, 0.034], abs=1e-9)
    assert _ttfts(tmp_path, rows, on=True, **kw) == pytest.approx([0.522, 0.522, 0.533, 0.044], abs=1e-9)


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("vllm-v1", {}, True),
        ("sglang", {}, True),
        ("trtllm", {}, True),
        ("vllm-v0", {}, False),
        ("sglang", {"overlap_admission": False}, False),
        ("vllm-v0", {"overlap_admission": True}, True),
        ("vllm-v1", {"async_scheduling": False}, False),  # V1 without async scheduling plans at each step's end
        ("vllm-v1", {"async_scheduling": False, "overlap_admission": True}, True),  # an explicit value wins
    ],
)
def test_presets_and_override_reach_the_instances(
    tmp_path: Path, kind: str, extra: dict[str, Any], expected: bool
) -> None:
    """The engines that schedule one step ahead (TensorRT-LLM's and SGLang's overlap loops, vLLM V1's async
    scheduling) lag; V0 plans at each step's end; a YAML value beats the preset; a physical cost model applies it."""
    assert preset(kind, **extra).overlap_admission is expected
    tr = write_csv(tmp_path / "w.csv", [(0.0, 16, 2)])
    kw: dict[str, Any] = {"serving_engine": {"kind": kind, **extra}, "scheduler": {"kind": "vllm"}}
    sc = sim.load_scenario(scenario(tr, cost={"kind": "roofline"}, **kw))
    assert [inst.overlap_admission for inst in Simulation(sc).instances] == [expected]
    linear = sim.load_scenario(scenario(tr, **kw))
    assert [inst.overlap_admission for inst in Simulation(linear).instances] == [False]


# -- fast-forward equals stepping with the lag on: decode, chunk and onward runs kept on --------------------------
def _workload(n: int, seed: int, rate: float, longest: int = 700) -> list[tuple[float, int, int]]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    p = rng.integers(1, longest, n)  # prompts of many chunks at the budgets below
    o = np.minimum(200, np.maximum(1, rng.lognormal(3.0, 1.0, n).astype(int)))
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True)]


SCHEDULERS: dict[str, dict[str, Any]] = {
    "sarathi": {"kind": "sarathi", "token_budget": 48, "max_num_seqs": 8},
    "vllm": {"kind": "vllm", "max_num_batched_tokens": 48, "max_num_seqs": 8},
    "vllm-nocache": {"kind": "vllm", "max_num_batched_tokens": 64, "max_num_seqs": 8, "enable_prefix_caching": False},
    "fcfs": {"kind": "fcfs", "max_num_seqs": 8},
    "sarathi40": {"kind": "sarathi", "token_budget": 40},  # one decoder + 39-token chunks (the remainder test)
    # the RankedQueue ones (hidden requests go back through `RankedQueue.append`) and TensorRT-LLM's
    "ltr": {"kind": "ltr"},
    "srpt": {"kind": "srpt"},
    "mlfq": {"kind": "mlfq"},
    "length_group": {"kind": "length_group"},
    "static": {"kind": "static"},
    "trtllm": {"kind": "trtllm"},
}
PREDICTORS: dict[str, dict[str, Any]] = {"ltr": {"kind": "oracle"}, "length_group": {"kind": "rank", "tau": 0.5}}


def _run(tmp_path: Path, reqs: list[tuple[float, int, int]], *, ff: bool, sched: str, **kw: Any) -> sim.Result:
    horizon = kw.pop("horizon", None)
    engine = kw.pop("serving_engine", {**LAG, "kind": "trtllm"} if sched == "trtllm" else LAG)
    if sched in PREDICTORS:
        kw["predictor"] = PREDICTORS[sched]
    sc = scenario(
        write_csv(tmp_path / "w.csv", sorted(reqs)),
        scheduler=SCHEDULERS[sched],
        fast_forward=ff,
        cost=ROOFLINE,
        serving_engine=engine,
        **kw,
    )
    if horizon is not None:
        sc["engine"]["horizon_s"] = horizon
    return sim.run(sc)


@settings(max_examples=42, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([2.0, 20.0, 200.0]),
    sched=st.sampled_from(sorted(SCHEDULERS)),
    kv=st.integers(48, 400),
    instances=st.integers(1, 2),
    preemption=st.sampled_from(["recompute", "swap"]),
    horizon=st.one_of(st.none(), st.floats(0.05, 6.0)),
)
def test_fast_forward_equals_stepping_with_the_lag_on(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    rate: float,
    sched: str,
    kv: int,
    instances: int,
    preemption: str,
    horizon: float | None,
) -> None:
    """Random workloads, chunked prefill (`sarathi`, `vllm` with and without prefix caching), whole prompts
    (`fcfs`), the ranked queues (`ltr`, `srpt`, `mlfq`, `length_group`), `static` and `trtllm`, KV pressure,
    one or two instances, a horizon: the lag on, runs on or off, the very same tables."""
    tmp = tmp_path_factory.mktemp("w")
    reqs = _workload(30, seed, rate)
    kw = {"kv_blocks": kv, "instances": instances, "preemption": preemption, "horizon": horizon}
    a = _run(tmp, reqs, ff=True, sched=sched, **kw)
    b = _run(tmp, reqs, ff=False, sched=sched, **kw)
    same_result(a, b)


@pytest.mark.parametrize("sched", ["sarathi", "vllm", "fcfs"])
def test_the_lag_moves_first_tokens_and_the_runs_still_skip_events(tmp_path: Path, sched: str) -> None:
    """The property above is not vacuous: on a busy instance the lag changes first tokens, fast-forward equals
    stepping with it, and the runs (decode, chunk, onward) still take many steps per event."""
    reqs = _workload(80, 3, rate=8.0)
    on = _run(tmp_path, reqs, ff=True, sched=sched)
    off = _run(tmp_path, reqs, ff=True, sched=sched, serving_engine={"kind": "vllm-v1", "overlap_admission": False})
    stepped = _run(tmp_path, reqs, ff=False, sched=sched)
    same_result(on, stepped)
    moved = (on.requests["ttft_s"] - off.requests["ttft_s"]).abs() > 1e-9
    assert moved.sum() >= len(reqs) // 4
    assert on.summary["sim"]["events"] < 0.6 * stepped.summary["sim"]["events"]
    assert on.summary["counts"]["completed"] == len(reqs)


def _chunk_steps(tmp_path: Path, reqs: list[tuple[float, int, int]]) -> list[float]:
    """End times of the prefill steps of the run below, stepped (a tracer turns chunk runs off)."""
    tracer = Tracer(requests=False)
    sc = scenario(
        write_csv(tmp_path / "s.csv", reqs),
        scheduler=SCHEDULERS["sarathi40"],
        cost=ROOFLINE,
        serving_engine=LAG,
    )
    sim.run(sc, trace_events=tracer)
    return sorted(t1 for _, _, t1, chunks, _, _ in tracer._iterations if chunks)


def test_arrival_before_the_remainder_cuts_the_chunk_run_one_boundary_later(tmp_path: Path) -> None:
    """One decoder beside a prompt of 51 chunks of 39 tokens and a 16-token remainder: one chunk run. A request
    arriving during the third step from the end is seen by the remainder's plan (the lag hides it at the next
    boundary only): the run is cut after its full chunks, and the newcomer's chunk shares the remainder's step (r2's
    first token later than without it). One arriving during the step before the remainder is hidden from the
    remainder's plan (`_lagged`) and seen by the next: the run goes on through the remainder uncut, the fewest
    events of the three; one arriving during the remainder is hidden from the next plan (one decode step more).
    Both modes agree throughout."""
    reqs = [(0.0, 30, 400), (0.0, 2005, 5)]
    ends = _chunk_steps(tmp_path, reqs)
    events, first = {}, {}  # r2's first token: the remainder's end unless a newcomer shares its step
    for at in (-3, -2, -1):
        late = (0.5 * (ends[at - 1] + ends[at]), 50, 5)  # the middle of that step
        a = _run(tmp_path, [*reqs, late], ff=True, sched="sarathi40")
        same_result(a, _run(tmp_path, [*reqs, late], ff=False, sched="sarathi40"))
        events[at] = a.summary["sim"]["events"]
        first[at] = float(a.requests.sort_values("arrival_s")["first_token_s"].iloc[1])
    assert events[-2] < min(events[-1], events[-3])
    assert first[-3] > first[-2] == first[-1] == ends[-1]


DISAGG = Path(__file__).resolve().parents[1] / "scenarios" / "regression" / "disagg-2p2d.yaml"


def _disagg(kind: str, on: bool | None, ff: bool = True) -> Simulation:
    sets = [f"serving_engine.kind={kind}", f"engine.fast_forward={ff}"]
    if on is not None:
        sets.append(f"serving_engine.overlap_admission={on}")
    return Simulation(sim.load_scenario(DISAGG, sets))


def test_disagg_decode_pools_lag_delivered_copies_and_trtllm_prefill_pools_do_not() -> None:
    """A request whose KV is copied into a decode instance while a step runs is hidden from the plan made before
    it came (`KVCopies.deliver` -> `_lagged`), as a new prompt is: the lag moves the decode pool's tokens (before
    the fix a decode pool never lagged and the run equalled the lag-off run). TensorRT-LLM's context servers run
    without the overlap scheduler (`disable_overlap_scheduler: true` in the recipes' `prefill:` sections): their
    pool does not lag. Fast-forward equals stepping with the lag on."""
    inst = _disagg("trtllm", None).instances
    assert [(i.role, i.overlap_admission) for i in inst] == [("prefill", False)] * 2 + [("decode", True)] * 2
    assert all(i.overlap_admission for i in _disagg("sglang", None).instances)
    on, off = (sim.run(sim.load_scenario(DISAGG, [f"serving_engine.overlap_admission={v}"])) for v in (True, False))
    assert not on.requests.equals(off.requests)
    stepped = sim.run(sim.load_scenario(DISAGG, ["serving_engine.overlap_admission=true", "engine.fast_forward=false"]))
    same_result(on, stepped)

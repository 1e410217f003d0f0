"""Admission reservations for future outputs (`serving_engine.admission_reserve`, policies/reserve.py): hand-computed
timelines on a tiny KV cache, SGLang's new_token_ratio step by step, and properties (every request completes, the
fast-forward equals stepping, nobody is held forever).

Linear costs: an iteration is 10 ms + 1 ms per prefill token + 2 ms per decoding sequence.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from policies.reserve import IgnoreEos, NewTokenRatio, NoEvict, reservation
from sim.core.batch import BatchPlan
from sim.core.request import Request
from sim.costmodel.engine import preset
from tests.helpers import same_result, scenario, write_csv
from tests.strategies import examples, request_rows

SARATHI = {"kind": "sarathi", "max_num_seqs": 16, "token_budget": 64}
VLLM = {"kind": "vllm", "max_num_seqs": 16, "max_num_batched_tokens": 64, "enable_prefix_caching": False}


def _run(tmp_path: Any, rows: list[tuple[float, int, int]], engine: dict[str, Any], kv: int, **kw: Any) -> Any:
    tr = write_csv(tmp_path / "w.csv", rows)
    sc = scenario(tr, kv_blocks=kv, scheduler=kw.pop("sched", SARATHI), **kw)
    sc["serving_engine"] = engine
    return sim.run(sim.load_scenario(sc))


def test_presets_name_their_engines_reservation() -> None:
    assert preset("vllm-v1").admission_reserve == "none"
    assert preset("vllm-v0").admission_reserve == "none"
    assert preset("trtllm").admission_reserve == "guaranteed_no_evict"
    assert preset("sglang").admission_reserve == "sglang_new_token_ratio"
    assert reservation(preset("vllm-v1")) is None
    assert isinstance(reservation(preset("trtllm")), NoEvict)
    assert isinstance(reservation(preset("sglang", admission_reserve="none")), type(None))


@pytest.mark.parametrize("sched", [SARATHI, VLLM])
@pytest.mark.parametrize("ff", [True, False])
def test_guaranteed_no_evict_admits_what_whole_requests_fit(tmp_path: Any, sched: dict[str, Any], ff: bool) -> None:
    # KV: 10 blocks of 16 tokens. Four requests of prompt 16 + output 32 = 48 tokens = 3 blocks at their end.
    # No reservation: all four start at once (one prompt block each) and the fourth is preempted when the batch
    # outgrows 10 blocks. Guaranteed no-evict: 3 x 3 = 9 blocks fit, the fourth (12 > 10) waits for a completion.
    # A, B, C: prefill 48 tokens in one step, 10 + 48 = 58 ms (first tokens), then 31 steps of three decodes,
    # 16 ms each: done at 0.058 + 31 x 0.016 = 0.554 s. D then prefills alone: 10 + 16 = 26 ms, TTFT 0.580 s.
    rows = [(0.0, 16, 32)] * 4
    gne = _run(tmp_path, rows, {"kind": "trtllm"}, kv=10, sched=sched, fast_forward=ff).requests
    assert gne["ttft_s"].tolist()[:3] == pytest.approx([0.058] * 3, abs=1e-12)
    assert gne["ttft_s"].iloc[3] == pytest.approx(0.554 + 0.026, abs=1e-12)
    assert gne["preemptions"].sum() == 0
    free = _run(tmp_path, rows, {"kind": "trtllm", "admission_reserve": "none"}, kv=10, sched=sched).requests
    assert free["ttft_s"].max() < 0.1  # all four prefilled in the first step
    assert free["preemptions"].sum() >= 1  # ... and KV ran out on the way


def test_guaranteed_no_evict_never_holds_an_idle_instance(tmp_path: Any) -> None:
    # One request of 9 blocks on a 10-block KV runs; a second of 9 blocks waits for it, then runs alone.
    rows = [(0.0, 16, 128), (0.0, 16, 128)]
    res = _run(tmp_path, rows, {"kind": "trtllm"}, kv=10)
    assert res.summary["counts"]["completed"] == 2
    first, second = res.requests.sort_values("arrival_s")["ttft_s"].tolist()
    assert second > first + 127 * 0.012  # after the first's 127 decode steps


def test_guaranteed_no_evict_reserves_sliding_window_layers_up_to_the_window() -> None:
    # A model of one full (F) and one sliding-window (L, window 16) layer, 16-token blocks, 8 blocks. Two running
    # requests and a candidate, each prompt 16 + output 32 = 3 blocks on the full layer and min(48, 16) = 16 tokens
    # = 1 block on the window layer: ceil((3 + 1) / 2) = 2 blocks each, 2 + 2 + 2 = 6 <= 8, admitted. Reserving
    # the whole length on every layer (no window) needs 3 + 3 + 3 = 9 > 8 and holds it.
    from hwprofiles import ModelSpec
    from tests.helpers import TINY_MODEL

    swa = ModelSpec(**{**TINY_MODEL, "attention_pattern": "LF", "sliding_window": 16})
    view = _View([_req(16, 32), _req(16, 32)], free_blocks=0)
    view.num_blocks = 8
    windowed, whole = reservation(preset("trtllm"), swa), reservation(preset("trtllm"))
    assert isinstance(windowed, NoEvict) and isinstance(whole, NoEvict)
    for r in (windowed, whole):
        r.begin(view, BatchPlan())  # type: ignore[arg-type]  # (_View carries only what a reservation reads)
    assert windowed.admits(view, _req(16, 32))  # type: ignore[arg-type]  # (as above)
    assert windowed.total == 4
    assert not whole.admits(view, _req(16, 32))  # type: ignore[arg-type]  # (as above)
    # gpt-oss-120b (18 F + 18 L layers, window 128), 32-token blocks, prompt 1024 + output 8192: ceil((18 x 288 +
    # 18 x 4) / 36) = 146 blocks where the whole length is 288.
    from hwprofiles import catalog

    oss = reservation(preset("trtllm"), catalog.model("gpt-oss-120b"))
    assert isinstance(oss, NoEvict)
    assert oss._need(_View([], 0, block_size=32), _req(1024, 8192)) == 146  # type: ignore[arg-type]  # (as above)


@pytest.mark.parametrize("sched", [{"kind": "fcfs"}, {"kind": "sjf"}, {"kind": "static"}])
def test_a_reservation_on_a_scheduler_that_ignores_it_is_an_error(tmp_path: Any, sched: dict[str, Any]) -> None:
    # Only `sarathi` and `vllm` obey it: a preset's reservation is never dropped silently.
    tr = write_csv(tmp_path / "w.csv", [(0.0, 16, 16)])
    sc = scenario(tr, scheduler=sched)
    sc["serving_engine"] = {"kind": "trtllm"}
    obey = r"admission_reserve: 'guaranteed_no_evict'.*'sarathi' or 'sglang' or 'trtllm' or 'vllm'"
    with pytest.raises(sim.ServesimError, match=obey):
        sim.load_scenario(sc)
    sc["serving_engine"] = {"kind": "trtllm", "admission_reserve": "none"}
    assert sim.load_scenario(sc).serving_engine.admission_reserve == "none"


class _View:
    """The few InstanceView members a reservation reads, set by hand."""

    def __init__(self, running: list[Request], free_blocks: int, iterations: int = 0, block_size: int = 16) -> None:
        self.running = running
        self.prefilling: list[Request] = []
        self.free_blocks = free_blocks
        self.block_size = block_size
        self.iterations = iterations
        self.num_blocks = 1000
        self.watermark_blocks = 0
        self.waiting: deque[Request] = deque()
        self.role = "colocated"

    def decoding(self) -> list[Request]:
        return list(self.running)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)


def _req(prompt: int, output: int, generated: int = 0) -> Request:
    r = Request(0, 0.0, prompt, output)
    r.generated = generated
    return r


def test_sglang_ratio_decays_per_step_to_its_floor_and_resets() -> None:
    # init 0.7, floor 0.7 x 0.14 = 0.098, decay (0.7 - 0.098) / 600 = 0.0010033... per step
    ntr = reservation(preset("sglang"))
    assert isinstance(ntr, NewTokenRatio)
    view = _View([_req(100, 1000)], free_blocks=100)
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (_View carries only what a reservation reads)
    assert ntr.ratio == pytest.approx(0.7)
    view.iterations = 100
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert ntr.ratio == pytest.approx(0.7 - 100 * 0.602 / 600)
    view.iterations = 101
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert ntr.ratio == pytest.approx(0.7 - 101 * 0.602 / 600)
    view.iterations = 5000
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert ntr.ratio == pytest.approx(0.098)
    # a retraction: (decoded + 20 x n) / (max_new + 1) over those still running: (300 + 40) / (1000 + 1000 + 1)
    view.running = [_req(100, 1000, 100), _req(100, 1000, 200)]
    ntr.begin(view, BatchPlan(preempted=1))  # type: ignore[arg-type]  # (as above)
    assert ntr.ratio == pytest.approx(340 / 2001)
    view.running = []
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert ntr.ratio == pytest.approx(0.7)  # idle: back to init


def test_sglang_admits_while_prompt_and_clipped_output_stay_below_the_room() -> None:
    # free 100 blocks x 16 = 1,600 tokens; one running request with 1,000 tokens to go, reserved at 0.7: 700.
    # Room 900: prompt 100 + output 800 = 900 is not below it (held); prompt 99 + 800 = 899 is admitted, and the
    # room falls by those 899 tokens to 1: nothing else fits.
    ntr = reservation(preset("sglang"))
    assert isinstance(ntr, NewTokenRatio)
    view = _View([_req(100, 1000)], free_blocks=100)
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (_View carries only what a reservation reads)
    assert not ntr.admits(view, _req(100, 800))  # type: ignore[arg-type]  # (as above)
    assert ntr.blocked
    ntr = reservation(preset("sglang"))  # a fresh one (a held prompt latches: see the latch test)
    assert isinstance(ntr, NewTokenRatio)
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    ok = _req(99, 800)
    assert ntr.admits(view, ok)  # type: ignore[arg-type]  # (as above)
    ntr.admitted(ok)
    assert ntr.room == pytest.approx(1.0)
    # outputs are counted up to clip_max_new_tokens (4,096): a running request with 10,000 to go reserves 4,096 x 0.7
    view = _View([_req(100, 10_000)], free_blocks=1000)
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert ntr.admits(view, _req(10, 10))  # type: ignore[arg-type]  # (as above)
    assert ntr.room == pytest.approx(16_000 - 4096 * 0.7)


@pytest.mark.parametrize("engine", ["sglang_new_token_ratio", "sglang_ignore_eos"])
@pytest.mark.parametrize("ff", [True, False])
def test_sglang_holds_a_prompt_until_a_request_finishes(tmp_path: Any, engine: str, ff: bool) -> None:
    # KV 20 blocks = 320 tokens. A (prompt 16, output 280) prefills alone, 10 + 16 = 26 ms, then decodes alone, 12 ms
    # a step: done at 0.026 + 279 x 0.012 = 3.374 s. B (prompt 16, output 200) arrives at 0.05 s, two steps in: free
    # 20 - 2 = 18 blocks = 288 tokens. Ratio path: 16 + 200 = 216 is not below 288 - 278 x ~0.698 = 94; ignore_eos
    # path: 288 - 16 - 200 x 2 < 2. Held, and SGLang's batch_is_full latch tries no prompt again until A finishes:
    # B prefills alone at 3.374 (26 ms), TTFT 3.400 - 0.05. Without the reservation B starts at once.
    rows = [(0.0, 16, 280), (0.05, 16, 200)]
    res = _run(tmp_path, rows, {"kind": "sglang", "admission_reserve": engine}, kv=20, fast_forward=ff)
    assert res.requests["ttft_s"].iloc[1] == pytest.approx(3.400 - 0.05, abs=1e-9)
    # Without it B arrives as A's second decode step ends (0.026 + 2 x 0.012 = 0.050) and prefills in the next
    # step beside A's decode: 10 + 16 + 2 = 28 ms.
    free = _run(tmp_path, rows, {"kind": "sglang", "admission_reserve": "none"}, kv=20, fast_forward=ff)
    assert free.requests["ttft_s"].iloc[1] == pytest.approx(0.028, abs=1e-9)


def test_sglang_latch_holds_until_the_batch_shrinks() -> None:
    # Once a prompt is held, none is tried again (even one that would fit) until a running request leaves.
    ntr = reservation(preset("sglang"))
    assert isinstance(ntr, NewTokenRatio)
    a, b = _req(100, 1000), _req(100, 1000)
    view = _View([a, b], free_blocks=100)  # room 1,600 - 2,000 x 0.7 = 200
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (_View carries only what a reservation reads)
    assert not ntr.admits(view, _req(100, 200))  # type: ignore[arg-type]  # (300 is not below 200)
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert not ntr.admits(view, _req(10, 10))  # type: ignore[arg-type]  # (would fit: latched)
    view.running = [a]  # b finished
    ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    assert ntr.admits(view, _req(10, 10))  # type: ignore[arg-type]  # (room 1,600 - 700)


def test_sglang_ignore_eos_counts_outputs_whole_and_completions_in_order() -> None:
    # free 100 blocks x 16 = 1,600 tokens; A runs with 500 output tokens left, holding 200. A candidate of prompt
    # 160 (10 blocks) leaves 1,440. Sorted by tokens left: i = 0 needs 1,440 - left_0 x 2 > 2, i = 1 needs 1,440 +
    # (tokens held by the first) - left_1 > 1.
    ign = reservation(preset("sglang", admission_reserve="sglang_ignore_eos"))
    assert isinstance(ign, IgnoreEos)
    view = _View([_req(100, 600, 100)], free_blocks=100)  # A: 100 + 100 held, 500 left
    ign.begin(view, BatchPlan())  # type: ignore[arg-type]  # (_View carries only what a reservation reads)
    # output 1,638: A first (1,440 - 1,000 = 440 > 2), then 1,440 + 200 - 1,638 = 2 > 1: admitted
    assert ign.admits(view, _req(160, 1638))  # type: ignore[arg-type]  # (as above)
    # output 1,639: 1,440 + 200 - 1,639 = 1, not above 1: held
    assert not ign.admits(view, _req(160, 1639))  # type: ignore[arg-type]  # (as above)
    assert ign.blocked
    # a short output goes first: 400 left -> 1,440 - 800 = 640 > 2, then A: 1,440 + 160 - 500 = 1,100 > 1
    ign = IgnoreEos()  # (a fresh one: the held prompt latched the first)
    ign.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
    short = _req(160, 400)
    assert ign.admits(view, short)  # type: ignore[arg-type]  # (as above)
    ign.admitted(short)
    assert ign.states == [(400, 160), (500, 200)]
    # the ratio path would admit far more: 1,600 - 500 x 0.7 = 1,250 of room against 160 + min(1,639, 4,096)
    for prompt_out, ok in (((160, 1639), False), ((160, 1000), True)):  # 1,799 is not below 1,250; 1,160 is
        ntr = reservation(preset("sglang"))
        assert ntr is not None
        ntr.begin(view, BatchPlan())  # type: ignore[arg-type]  # (as above)
        assert ntr.admits(view, _req(*prompt_out)) is ok  # type: ignore[arg-type]  # (as above)


def test_recipes_that_disable_the_radix_cache_take_the_ignore_eos_path() -> None:
    from benchmarks import coverage  # noqa: F401  (puts benchmarks/ on the path coverage_recipes imports from)
    from benchmarks.coverage_recipes import recipe_terms, sglang_radix_disabled

    def row(model: str, prec: str, gpu: str, date: str, backend: str = "sglang") -> pd.Series:
        return pd.Series(
            {
                "backend": backend,
                "mode": "agg",
                "model_path": model,
                "precision": prec,
                "system": gpu,
                "silicon_data_source": f"source_file=x.csv;measured={date}",
                "isl": 1024,
                "osl": 1024,
                "tp_size": 8,
                "attention_dp_size": 1,
                "moe_tp_size": 1,
                "moe_ep_size": 1,
            }
        )

    assert sglang_radix_disabled(row("deepseek-ai/DeepSeek-R1", "fp8", "b200_sxm", "2026-03-25"))
    assert not sglang_radix_disabled(row("deepseek-ai/DeepSeek-R1", "fp8", "b200_sxm", "2025-11-17"))  # before
    assert not sglang_radix_disabled(row("zai-org/GLM-5", "fp8", "h200_sxm", "2026-03-19"))  # glm5_fp8_h200.sh
    assert sglang_radix_disabled(row("zai-org/GLM-5", "fp8", "b200_sxm", "2026-03-20"))
    assert not sglang_radix_disabled(row("deepseek-ai/DeepSeek-R1", "fp8", "b200_sxm", "2026-03-25", "trtllm"))
    terms, _ = recipe_terms(row("deepseek-ai/DeepSeek-R1", "fp8", "h200_sxm", "2026-03-25"), 64)
    assert terms["admission_reserve"] == "sglang_ignore_eos"


@settings(max_examples=examples(20), deadline=None)
@given(
    rows=st.lists(request_rows(2.0, 120, 150), min_size=1, max_size=25),
    kv=st.integers(12, 60),
    engine=st.sampled_from(["trtllm", "sglang", "sglang_ignore_eos"]),
    sched=st.sampled_from([SARATHI, VLLM]),
)
def test_every_request_completes_and_fast_forward_equals_stepping(
    tmp_path_factory: Any, rows: list[tuple[float, int, int]], kv: int, engine: str, sched: dict[str, Any]
) -> None:
    """Whatever the load, a reservation never drops or strands a request (a request the KV cannot hold whole is
    rejected on arrival, the rest complete), and fast-forwarded runs make the same decisions as stepped ones."""
    tmp = tmp_path_factory.mktemp("r")
    rows = sorted(rows)
    eng = {"kind": "sglang", "admission_reserve": engine} if engine == "sglang_ignore_eos" else {"kind": engine}
    a = _run(tmp, rows, eng, kv=kv, sched=sched, fast_forward=True)
    b = _run(tmp, rows, eng, kv=kv, sched=sched, fast_forward=False)
    same_result(a, b)  # requests, timeline (ties fixed in tests/test_timeline_ties.py), counts, iterations
    counts = a.summary["counts"]
    assert counts["completed"] + counts["rejected"] == len(rows)
    too_big = sum(-(-(p + o) // 16) > kv for _, p, o in rows)
    assert counts["rejected"] == too_big
    if engine == "trtllm":  # GUARANTEED_NO_EVICT's defining guarantee: what it admits runs to the end unevicted
        assert a.requests["preemptions"].sum() == 0

"""SGLang's scheduler (`scheduler.kind: sglang`, policies/sglang.py): plans by hand, hand-computed timelines, and
properties (every request accounted for, KV never over capacity, fast-forward equal to stepping).

Linear costs: an iteration is 10 ms + 1 ms per prefill token + 2 ms per decoding sequence.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from policies.continuous import RecvSarathi
from policies.dp_chunks import RankChunks
from policies.sglang import RecvSglang, Sglang, SglangConfig
from sim.core.batch import BatchPlan
from sim.core.registry import SCHEDULERS
from sim.core.request import Request
from sim.costmodel.engine import preset
from tests.helpers import same_result, scenario, write_csv
from tests.strategies import examples, request_rows

SGL = {"kind": "sglang", "chunked_prefill_size": 64, "max_running_requests": 16}


def _req(rid: int, target: int, done: int) -> Request:
    req = Request(rid, 0.0, target, 5)
    req.prefill_done = req.kv_tokens = done
    return req


class _View:
    """Just what the plans read: 3 decoding requests and two waiting prompts (20 and 30 tokens)."""

    def __init__(self) -> None:
        self.decoders = [_req(i, 10, 10) for i in range(3)]
        self.running: list[Request] = list(self.decoders)
        self.waiting = deque([_req(3, 20, 0), _req(4, 30, 0)])
        self.prefilling: list[Request] = []

    def decode_all(self, plan: BatchPlan) -> bool:
        return False

    def decoding(self) -> list[Request]:
        return self.decoders

    def reserve_decode_slots(self, reqs: list[Request]) -> bool:
        return True

    def can_admit(self, req: Request) -> bool:
        return True

    def admit(self, req: Request) -> None:
        self.running.append(self.waiting.popleft())


def _plans(sched: Sglang) -> tuple[BatchPlan, BatchPlan]:
    view = _View()
    first = sched.schedule(view, 0.0)  # type: ignore[arg-type]  # a stand-in InstanceView
    for req, n in first.prefill:  # the prompts finish their prefill and decode from now on
        req.prefill_done = req.kv_tokens = n
        view.decoders.append(req)
    return first, sched.schedule(view, 0.0)  # type: ignore[arg-type]  # a stand-in InstanceView


def test_two_waiting_prompts_run_as_a_prefill_batch_without_the_decoders() -> None:
    first, second = _plans(Sglang(_cfg(64)))
    assert [(r.id, n) for r, n in first.prefill] == [(3, 20), (4, 30)]
    assert first.decode == [] and first.decode_count == 0  # the 3 decoders wait out the prefill batch
    assert second.prefill == [] and [r.id for r in second.decode] == [0, 1, 2, 3, 4]  # then everyone decodes


def test_with_enable_mixed_chunk_the_decoders_join_and_take_budget_first() -> None:
    first, _ = _plans(Sglang(_cfg(64), mixed=True))
    assert [r.id for r in first.decode] == [0, 1, 2]
    assert [(r.id, n) for r, n in first.prefill] == [(3, 20), (4, 30)]
    # a 50-token budget: 3 for the decodes, 20 for the first prompt, 27 of the second (chunked)
    first, _ = _plans(Sglang(_cfg(50), mixed=True))
    assert [(r.id, n) for r, n in first.prefill] == [(3, 20), (4, 27)]


def test_a_prompt_above_the_chunk_is_cut_and_continues_first() -> None:
    sched = Sglang(_cfg(25))
    view = _View()
    plan = sched.schedule(view, 0.0)  # type: ignore[arg-type]  # a stand-in InstanceView
    assert [(r.id, n) for r, n in plan.prefill] == [(3, 20), (4, 5)] and not plan.decode
    a, b = (r for r, _ in plan.prefill)
    a.prefill_done = a.kv_tokens = 20
    view.decoders.append(a)
    b.prefill_done = b.kv_tokens = 5
    view.prefilling = [b]
    plan = sched.schedule(view, 0.0)  # type: ignore[arg-type]  # a stand-in InstanceView
    assert [(r.id, n) for r, n in plan.prefill] == [(4, 25)] and not plan.decode  # its rest, alone


def _cfg(budget: int) -> Any:
    from policies.continuous import SarathiConfig

    return SarathiConfig(max_num_seqs=16, token_budget=budget)


def _ttft(tmp_path: Any, rows: list[tuple[float, int, int]], sched: dict[str, Any], ff: bool = True) -> Any:
    sc = scenario(write_csv(tmp_path / "w.csv", rows), scheduler=sched, fast_forward=ff)
    return sim.run(sim.load_scenario(sc)).requests


@pytest.mark.parametrize("ff", [True, False])
def test_decoders_wait_out_a_prefill_batch(tmp_path: Any, ff: bool) -> None:
    # A (prompt 10, 4 outputs) at 0; B and C (20 each) at 0.015. sglang: A's prefill 20 ms (0.020); B + C alone
    # 10 + 40 = 50 ms (0.070: TTFT 0.055); then A, B, C decode at 16 ms (0.086, 0.102: B and C done) and A alone
    # at 12 ms: A done at 0.114.
    # sarathi / mixed: A's decode rides with B + C: 52 ms (0.072: TTFT 0.057), then 16 ms steps: A done at 0.104.
    rows = [(0.0, 10, 4), (0.015, 20, 3), (0.015, 20, 3)]
    res = _ttft(tmp_path, rows, SGL, ff)
    assert res["ttft_s"].tolist() == pytest.approx([0.020, 0.055, 0.055], abs=1e-12)
    assert res["e2el_s"].iloc[0] == pytest.approx(0.114, abs=1e-12)
    for mixed in ({**SGL, "enable_mixed_chunk": True}, {"kind": "sarathi", "max_num_seqs": 16, "token_budget": 64}):
        res = _ttft(tmp_path, rows, mixed, ff)
        assert res["ttft_s"].tolist() == pytest.approx([0.020, 0.057, 0.057], abs=1e-12)
        assert res["e2el_s"].iloc[0] == pytest.approx(0.104, abs=1e-12)


@pytest.mark.parametrize("ff", [True, False])
def test_a_chunked_prompt_runs_all_its_chunks_before_the_decoders(tmp_path: Any, ff: bool) -> None:
    # D (10, 3 outputs) at 0: 20 ms. P (100) at 0.015: chunk 64 alone (74 ms, 0.094), its 36 alone (46 ms, 0.140:
    # TTFT 0.125), then D and P decode: 14 ms -> D's second token at 0.154 (P done), its
    # third alone at 0.166.
    res = _ttft(tmp_path, [(0.0, 10, 3), (0.015, 100, 2)], SGL, ff)
    assert res["ttft_s"].tolist() == pytest.approx([0.020, 0.125], abs=1e-12)
    assert res["e2el_s"].iloc[0] == pytest.approx(0.166, abs=1e-12)


def test_the_kind_is_built_with_the_engines_reservation_recv_interval_and_rank_chunks() -> None:
    sgl = preset("sglang")
    assert sgl.admission_reserve == "sglang_new_token_ratio"
    build = SCHEDULERS.build  # (config, context) as the cluster passes it
    s = build(SglangConfig(), engine=sgl, attention_dp=4)
    assert isinstance(s, Sglang) and isinstance(s.ranks, RankChunks) and s.ranks.per_rank == 8192 // 4
    assert s.reserve is not None and not s.mixed and s.max_seqs == 1024 and s.budget == 8192
    s = build(SglangConfig(enable_mixed_chunk=True), engine=sgl.model_copy(update={"scheduler_recv_interval": 4}))
    assert isinstance(s, RecvSglang) and isinstance(s, RecvSarathi) and s.mixed and s.ranks is None


@settings(max_examples=examples(25), deadline=None)
@given(
    rows=st.lists(request_rows(1.0, 150, 120), min_size=1, max_size=25),
    kv=st.integers(12, 60),
    budget=st.sampled_from([16, 64, 200]),
    mixed=st.booleans(),
    engine=st.sampled_from([None, "sglang", "recv"]),
    preemption=st.sampled_from(["recompute", "swap"]),
)
def test_every_request_is_accounted_for_and_kv_never_overflows(
    tmp_path_factory: Any,
    rows: list[tuple[float, int, int]],
    kv: int,
    budget: int,
    mixed: bool,
    engine: str | None,
    preemption: str,
) -> None:
    tmp = tmp_path_factory.mktemp("s")
    rows = sorted(rows)
    sched = {**SGL, "chunked_prefill_size": budget, "enable_mixed_chunk": mixed}
    sc = scenario(write_csv(tmp / "w.csv", rows), kv_blocks=kv, scheduler=sched, preemption=preemption)
    if engine:  # the SGLang preset's reservation and rank chunks; "recv": behind a receive interval of 3
        sc["serving_engine"] = {"kind": "sglang", **({"scheduler_recv_interval": 3} if engine == "recv" else {})}
    a = sim.run(sim.load_scenario(sc))
    b = sim.run(sim.load_scenario({**sc, "engine": {"fast_forward": False}}))
    same_result(a, b)
    counts = a.summary["counts"]
    assert counts["completed"] + counts["rejected"] == len(rows)
    assert counts["rejected"] == sum(-(-(p + o) // 16) > kv for _, p, o in rows)
    assert (a.timeline["kv_used_blocks"] <= kv).all()
    done = a.requests.dropna(subset=["completion_s"])
    assert len(done) == counts["completed"] and (done["generated_tokens"] == done["output_tokens"]).all()

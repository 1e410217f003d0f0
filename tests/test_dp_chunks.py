"""SGLang's prompt chunks under attention DP (`serving_engine.attention_dp_rank_chunks`, policies/dp_chunks.py):
the instance's token budget split per rank (`chunked_prefill_size // dp_size`), each prompt on one rank
(round robin in arrival order), hand-computed plans on a stand-in instance."""

from __future__ import annotations

from collections import deque

import pytest

from policies.continuous import RecvSarathi, Sarathi, SarathiConfig, _sarathi
from policies.dp_chunks import RankChunks
from sim.core.batch import BatchPlan
from sim.core.request import Request
from sim.costmodel.engine import preset


class _Inst:
    """The calls Sarathi's plan makes: memory always admits; `decoders` decode every step (a cohort)."""

    def __init__(self, prompts: list[int], decoders: int = 0) -> None:
        self.waiting: deque[Request] = deque(Request(i, 0.0, p, 10) for i, p in enumerate(prompts))
        self.running: list[Request] = []
        self.prefilling: list[Request] = []
        self.decoders = decoders

    def decode_all(self, plan: BatchPlan) -> bool:
        plan.cohort, plan.cohort_n = bool(self.decoders), self.decoders
        return True

    def can_admit(self, req: Request, tokens: int | None = None) -> bool:
        return True

    def admit(self, req: Request, tokens: int | None = None) -> None:
        self.waiting.remove(req)
        self.running.append(req)
        self.prefilling.append(req)

    def step(self, plan: BatchPlan) -> None:
        """Run the plan's chunks (what the engine does between plans)."""
        for req, n in plan.prefill:
            req.prefill_done += n
            if req.prefill_done >= req.prefill_target:
                self.prefilling.remove(req)


def _sched(budget: int = 8192, dp: int = 4, engine: str = "sglang", seqs: int = 256) -> Sarathi:
    eng = preset(engine).model_copy(update={"admission_reserve": "none"})  # (the stand-in keeps no iterations)
    s = _sarathi(SarathiConfig(token_budget=budget, max_num_seqs=seqs), engine=eng, attention_dp=dp)
    assert isinstance(s, Sarathi)
    return s


def _chunks(plan: BatchPlan) -> list[tuple[int, int]]:
    return [(r.id, n) for r, n in plan.prefill]


def test_two_8k_prompts_on_4_ranks_get_2048_each():
    # budget 8192 over 4 ranks: 2048 a rank. A -> rank 0, B -> rank 1; ranks 2 and 3 idle. Without the split the
    # whole 8192-token budget went to A alone.
    s, inst = _sched(), _Inst([8192, 8192])
    plan = s.schedule(inst, 0.0)
    assert _chunks(plan) == [(0, 2048), (1, 2048)]
    inst.step(plan)
    assert _chunks(s.schedule(inst, 0.0)) == [(0, 2048), (1, 2048)]  # the same ranks again: 4,096 done each
    plain = Sarathi(SarathiConfig(token_budget=8192, max_num_seqs=256))
    assert _chunks(plain.schedule(_Inst([8192, 8192]), 0.0)) == [(0, 8192)]


def test_five_8k_prompts_fill_the_4_ranks_and_the_fifth_waits_for_rank_0():
    s, inst = _sched(), _Inst([8192] * 5)
    plan = s.schedule(inst, 0.0)
    assert _chunks(plan) == [(0, 2048), (1, 2048), (2, 2048), (3, 2048)]
    assert [r.id for r in inst.waiting] == [4]
    assert s.ranks is not None and s.ranks.rank_of(inst.waiting[0]) == 0  # round robin in arrival order: rank 0
    for _ in range(3):  # A (rank 0) prefills 8192 in 4 steps; the fifth waits on its rank until then
        inst.step(plan)
        plan = s.schedule(inst, 0.0)
        assert [r.id for r in inst.waiting] == [4]
    inst.step(plan)  # all four done
    assert _chunks(s.schedule(inst, 0.0)) == [(4, 2048)]


def test_small_prompts_share_a_rank_and_the_last_is_chunked_to_its_rank_remainder():
    # 7 prompts of 1500 on ranks 0,1,2,3,0,1,2: ranks 0-2 take 1500 + 548, rank 3 takes 1500.
    s, inst = _sched(), _Inst([1500] * 7)
    assert _chunks(s.schedule(inst, 0.0)) == [(0, 1500), (1, 1500), (2, 1500), (3, 1500), (4, 548), (5, 548), (6, 548)]


def test_a_full_rank_lets_another_ranks_prompt_go_ahead():
    # X (rank 0) still prefilling; the queue is Y (rank 1), then Z (rank 2)... with budget 4096 over 2 ranks
    # (2048 a rank): X takes rank 0's 2048; Y (dispatched to rank 1) runs beside it; Z (rank 0 again) waits.
    s, inst = _sched(budget=4096, dp=2), _Inst([8192, 100, 100])
    assert _chunks(s.schedule(inst, 0.0)) == [(0, 2048), (1, 100)]
    assert [r.id for r in inst.waiting] == [2]
    s2, inst2 = _sched(budget=4096, dp=2), _Inst([100, 8192, 8192, 100])
    # 0 -> r0 (100), 1 -> r1 (2048), 2 -> r0 (1948), 3 -> r1: rank 1 is full, so it waits
    assert _chunks(s2.schedule(inst2, 0.0)) == [(0, 100), (1, 2048), (2, 1948)]
    assert [r.id for r in inst2.waiting] == [3]


def test_decodes_take_their_share_of_each_rank():
    # 8 decoders over 4 ranks: ceil(8 / 4) = 2 a rank (the busiest rank's share, as the cost model prices it)
    s, inst = _sched(), _Inst([8192, 8192], decoders=8)
    assert _chunks(s.schedule(inst, 0.0)) == [(0, 2046), (1, 2046)]


def test_the_running_request_cap_stays_the_instances():
    s, inst = _sched(seqs=3), _Inst([100] * 5)
    assert [i for i, _ in _chunks(s.schedule(inst, 0.0))] == [0, 1, 2]


def test_finished_requests_are_forgotten():
    s, inst = _sched(), _Inst([100, 100])
    inst.step(s.schedule(inst, 0.0))
    s.schedule(inst, 0.0)
    assert s.ranks is not None and s.ranks.rank == {}


@pytest.mark.parametrize(("engine", "dp", "on"), [("sglang", 4, True), ("sglang", 1, False),
                                                  ("trtllm", 4, False), ("vllm-v1", 4, False)])  # fmt: skip
def test_only_sglang_with_attention_dp_splits(engine, dp, on):
    s = _sched(engine=engine, dp=dp)
    assert (s.ranks is not None) is on
    if on:
        assert s.ranks is not None and s.ranks.per_rank == 2048
    assert preset(engine).attention_dp_rank_chunks is (engine == "sglang")


def test_the_receive_interval_subclass_keeps_the_split():
    eng = preset("sglang").model_copy(update={"scheduler_recv_interval": 4, "admission_reserve": "none"})
    s = _sarathi(SarathiConfig(token_budget=8192, max_num_seqs=256), engine=eng, attention_dp=4)
    assert isinstance(s, RecvSarathi) and isinstance(s.ranks, RankChunks)


def test_chunk_runs_are_off_with_the_split():
    s, inst = _sched(), _Inst([8192 * 4])
    plan = s.schedule(inst, 0.0)
    assert _chunks(plan) == [(0, 2048)]
    assert s.chunk_horizon(inst, plan) == 1  # no fast-forward over chunk plans: each plan places its chunks


def test_the_split_step_is_priced_at_its_busiest_rank():
    # The cost model already spreads a step over the ranks (ceil(tokens / dp) per rank for the dense layers,
    # chunks largest-first onto the least-loaded rank for attention): the split's two 2,048-token chunks cost one
    # rank's chunk of attention, where the unsplit plan's 8,192-token chunk put all of it on one rank.
    from sim.costmodel.layout import Layout
    from sim.costmodel.structured import StructuredCost
    from tests.test_costmodel_structured import EXACT, GPU, TOY_MOE

    dp = StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=Layout(tp=1, attention_dp=4, ep=4, moe_tp=1))
    split = dp.breakdown([(2048, 0), (2048, 0)], 0, 0)
    whole = dp.breakdown([(8192, 0)], 0, 0)
    assert split["attn_prefill"] == pytest.approx(dp._prefill_one(2048, 0))
    assert whole["attn_prefill"] == pytest.approx(dp._prefill_one(8192, 0))
    assert split["attn_prefill"] < whole["attn_prefill"] / 4  # (attention grows faster than linearly in the chunk)

"""TensorRT-LLM's batch scheduler (`scheduler.kind: trtllm`, policies/trtllm.py) on hand-computed timelines.

Linear costs: an iteration is 10 ms + 1 ms per prefill token + 2 ms per decoding sequence. Each case states what
`MicroBatchScheduler` (no context chunking) does and what Sarathi's chunked plan would do instead.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest

import sim
from policies.trtllm import MAX_BATCH_SIZE, MAX_NUM_TOKENS, Trtllm, TrtllmConfig, rank_room
from sim.core.batch import BatchPlan
from sim.core.request import Request
from sim.errors import ServesimError
from tests.helpers import scenario, write_csv


def _ttft(tmp_path, rows, sched, dp=1, fast_forward=True):
    sc = scenario(write_csv(tmp_path / "w.csv", rows), scheduler=sched, fast_forward=fast_forward)
    if dp > 1:
        sc["cluster"]["attention_dp"] = dp
    return sim.run(sim.load_scenario(sc)).requests["ttft_s"].tolist()


def trt(tokens: int, **kw) -> dict:
    return {"kind": "trtllm", "max_num_tokens": tokens, **kw}


@pytest.mark.parametrize("ff", [True, False])
def test_a_prompt_runs_whole_and_waits_when_it_does_not_fit(tmp_path, ff):
    # max_num_tokens 64, A and B (40 prompt tokens each) at t = 0.
    # trtllm: iteration 1 holds A only (40 + 40 > 64): 10 + 40 = 50 ms; iteration 2: A's decode (1 token) + B (40):
    # 10 + 40 + 2 = 52 ms -> B's first token at 0.102.
    # sarathi (budget 64): A + 24 tokens of B (74 ms), then A's decode + B's 16 (28 ms): A 0.074, B 0.102.
    rows = [(0.0, 40, 3), (0.0, 40, 3)]
    assert _ttft(tmp_path, rows, trt(64), fast_forward=ff) == pytest.approx([0.050, 0.102], abs=1e-12)
    chunked = _ttft(tmp_path, rows, {"kind": "sarathi", "token_budget": 64}, fast_forward=ff)
    assert chunked == pytest.approx([0.074, 0.102], abs=1e-12)
    # enable_chunked_prefill: Sarathi's plan within the same budget
    assert _ttft(tmp_path, rows, trt(64, enable_chunked_prefill=True), fast_forward=ff) == pytest.approx(chunked)


def test_the_first_context_that_does_not_fit_ends_the_iteration(tmp_path):
    # A 40, B 30, C 10 at t = 0, max_num_tokens 64: A fits, B (30 > 24 left) does not and ends the loop, so C (10,
    # which would fit) waits too: iteration 1 = 50 ms; iteration 2 = A's decode + B + C = 10 + 40 + 2 = 52 ms.
    # If C jumped B it would get its first token at 0.060.
    ttft = _ttft(tmp_path, [(0.0, 40, 3), (0.0, 30, 3), (0.0, 10, 3)], trt(64))
    assert ttft == pytest.approx([0.050, 0.102, 0.102], abs=1e-12)


@pytest.mark.parametrize(("tokens", "b_ttft"), [(55, 0.103), (56, 0.069)])
def test_generation_tokens_count_against_the_budget(tmp_path, tokens, b_ttft):
    # A (prompt 10, 5 outputs): prefill 20 ms, then 4 decode steps of 12 ms: done at 0.068. B (55) arrives at 0.030.
    # max_num_tokens 55: A's decode token leaves 54 < 55, so B waits for A to finish and runs alone: 0.068 + 0.065
    # = 0.133 -> TTFT 0.103. max_num_tokens 56: B joins the next iteration (0.032) beside A's decode: 10 + 55 + 2
    # = 67 ms -> 0.099 -> TTFT 0.069.
    ttft = _ttft(tmp_path, [(0.0, 10, 5), (0.030, 55, 2)], trt(tokens))
    assert ttft[1] == pytest.approx(b_ttft, abs=1e-12)


def test_each_attention_dp_rank_has_its_own_budget(tmp_path):
    # dp 2, max_num_tokens 64 per rank, three prompts of 40 at t = 0: A on one rank, B on the other, C fits neither
    # (24 left on each): iteration 1 = 10 + 80 = 90 ms. Iteration 2: A and B decode (one token per rank), C (40)
    # fits: 10 + 40 + 4 = 54 ms -> C at 0.144. One instance-wide budget of 128 would have taken C at once.
    ttft = _ttft(tmp_path, [(0.0, 40, 3), (0.0, 40, 3), (0.0, 40, 3)], trt(64), dp=2)
    assert ttft == pytest.approx([0.090, 0.090, 0.144], abs=1e-12)


def test_a_prompt_above_the_budget_runs_alone_instead_of_waiting_forever(tmp_path):
    # TensorRT-LLM refuses it without chunking; servesim runs it alone: 10 + 50 = 60 ms, never dropped or stuck.
    assert _ttft(tmp_path, [(0.0, 50, 2)], trt(32)) == pytest.approx([0.060], abs=1e-12)


def test_rank_room_spreads_generation_tokens_evenly():
    assert rank_room(100, 1, 30) == [70]
    assert rank_room(100, 4, 10) == [97, 97, 98, 98]  # 10 = 4 x 2 + 2: the first two ranks one more
    assert rank_room(8, 2, 40) == [0, 0]  # never below zero


def _req(rid: int, target: int, done: int, kv: int) -> Request:
    """A real `Request` (the compiled core, `sim.core.native`, refuses stand-ins) at a given prefill progress."""
    req = Request(rid, 0.0, target, 5)
    req.prefill_done, req.kv_tokens = done, kv
    return req


class _View:
    """Just what `Trtllm.schedule` reads: two decoding requests, one waiting prompt, a speculation's lookahead."""

    def __init__(self, prompt: int, lookahead: int) -> None:
        self.waiting = deque([_req(2, prompt, 0, 0)])
        self.decoders = [_req(0, 10, 10, 10), _req(1, 10, 10, 10)]
        self.running = list(self.decoders)
        self.prefilling: list = []
        self.speculation = SimpleNamespace(lookahead=lookahead)

    def decode_all(self, plan: BatchPlan) -> bool:
        return False

    def decoding(self) -> list:
        return self.decoders

    def reserve_decode_slots(self, reqs: list) -> bool:
        return True

    def can_admit(self, req: object) -> bool:
        return True

    def admit(self, req: object) -> None:
        self.running.append(self.waiting.popleft())


def test_mtp_draft_tokens_count_per_generation_request():
    # Two decoding requests with k = 3 draft tokens take 2 x (3 + 1) = 8 tokens; budget 30 leaves 22: a prompt of
    # 22 is admitted, one of 23 is not (with k = 0 the 23-token prompt would fit: 30 - 2 = 28).
    def plan_for(prompt: int, lookahead: int) -> BatchPlan:
        view = _View(prompt, lookahead)
        return Trtllm(TrtllmConfig(max_num_tokens=30)).schedule(view, 0.0)  # type: ignore[arg-type]  # a stub view

    assert [n for _, n in plan_for(22, 4).prefill] == [22]
    assert plan_for(23, 4).prefill == []
    assert [n for _, n in plan_for(23, 1).prefill] == [23]


def test_defaults_are_trtllm_serves():
    cfg = TrtllmConfig()
    assert (cfg.max_batch_size, cfg.max_num_tokens, cfg.enable_chunked_prefill) == (2048, 8192, False)
    assert (MAX_BATCH_SIZE, MAX_NUM_TOKENS) == (2048, 8192)


def test_unknown_field_is_one_clear_error(tmp_path):
    sc = scenario(write_csv(tmp_path / "w.csv", [(0.0, 4, 2)]), scheduler={"kind": "trtllm", "token_budget": 64})
    with pytest.raises(ServesimError, match="token_budget"):
        sim.load_scenario(sc)


@pytest.mark.parametrize("ff", [True, False])
def test_context_holds_apply_under_trtllm_as_under_sarathi(tmp_path, ff):
    # The attention-DP balance case of tests/test_context_hold.py under `trtllm` (64 tokens per rank): A1, A2 prefill
    # together (0.030), then decode two at a time, 14 ms a step; B (5 tokens) at 0.050 is held 3 steps (iterations
    # 4-6) until the counter (timeout 6) wraps, whatever the scheduler kind.
    rows = [(0.0, 10, 300), (0.0, 10, 300), (0.050, 5, 2)]
    engine = {"attention_dp_balance": True, "attention_dp_timeout_iters": 6, "attention_dp_batching_wait_iters": 0}

    def run(eng: dict) -> list[float]:
        sc = scenario(write_csv(tmp_path / "w.csv", rows), scheduler=trt(64), fast_forward=ff)
        sc["cluster"]["attention_dp"] = 2
        sc["serving_engine"] = {"kind": "trtllm", "admission_reserve": "none", **eng}
        return sim.run(sim.load_scenario(sc)).requests["ttft_s"].tolist()

    free, held = run({}), run(engine)
    assert held[2] - free[2] == pytest.approx(3 * 0.014, abs=1e-12)
    assert held[:2] == free[:2]


class _SwapView(_View):
    """Two decoding requests (1 token each); at the head of the queue a swapped-out request (`kv_tokens` > 0), a
    decode (`rest` 0) or one swapped out mid-prompt with `rest` prompt tokens left, then a new prompt."""

    def __init__(self, rest: int, prompt: int) -> None:
        super().__init__(prompt, 1)
        back = _req(3, 100, 100 - rest, 50)  # `in_prefill` while `rest` > 0
        self.waiting.appendleft(back)
        self.prefilling: list = []

    def reserve_decode_slot(self, req: object) -> bool:
        return True

    def admit(self, req: object) -> None:
        super().admit(req)
        if getattr(req, "in_prefill", False):
            self.prefilling.append(req)


def _tokens(plan: BatchPlan) -> int:
    return len(plan.decode) + sum(n for _, n in plan.prefill)


@pytest.mark.parametrize(("rest", "prompt", "admitted"), [(0, 27, True), (0, 28, False), (20, 8, True), (20, 9, False)])
def test_swapped_in_requests_take_their_tokens_from_the_budget(rest, prompt, admitted):
    # max_num_tokens 30, two decodes leave 28. A swapped-in decode takes 1 more (27 left): a prompt of 27 joins,
    # one of 28 waits. A request swapped in with 20 prompt tokens left takes 20 (8 left): a prompt of 8 joins, 9
    # waits. The plan never holds more than 30 tokens (before the fix the swapped-in tokens were not charged: 31 / 31).
    view = _SwapView(rest, prompt)
    plan = Trtllm(TrtllmConfig(max_num_tokens=30)).schedule(view, 0.0)  # a stub view (untyped test: not checked)
    assert _tokens(plan) == 2 + (rest or 1) + (prompt if admitted else 0)
    assert _tokens(plan) <= 30


@pytest.mark.parametrize(("rest", "placed"), [(28, [28]), (29, [])])
def test_a_request_swapped_in_mid_prompt_runs_its_remainder_whole_or_waits(rest, placed):
    # max_num_tokens 30, two decodes leave 28: a remainder of 28 runs whole; one of 29 waits (TensorRT-LLM resumes
    # a paused request as a whole context), where Sarathi's swap-in would run a chunk of 28 of the 29.
    view = _SwapView(rest, 5)
    plan = Trtllm(TrtllmConfig(max_num_tokens=30)).schedule(view, 0.0)  # a stub view (untyped test: not checked)
    assert [n for _, n in plan.prefill] == placed
    assert len(plan.decode) == 2

"""The `vllm` scheduler (vLLM V1) on hand-computed timelines: token budget, prefix hits, max_model_len, defaults."""

from __future__ import annotations

import pytest

import sim
from hwprofiles import catalog
from policies.vllm import VLLMConfig
from sim.core.request import Request
from tests.helpers import scenario, write_csv

LINEAR = {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002}


def _run(tmp_path, rows, sched, **kw):
    tr = write_csv(tmp_path / "w.csv", rows)
    return sim.run(scenario(tr, scheduler=sched, cost=LINEAR, **kw))


def test_token_budget_shared_by_decodes_and_chunks_by_hand(tmp_path):
    # A (prompt 10, 3 tokens) and B (prompt 4, 2 tokens) arrive at 0; budget 8 tokens per step.
    # step 1: A's chunk of 8 (budget spent, B waits)       0.01 + 8 ms            -> t = 0.018
    # step 2: A's last 2, then B's whole 4 (6 <= 8)         0.01 + 6 ms            -> t = 0.034: both first tokens
    # step 3: decodes A, B                                  0.01 + 2 x 2 ms        -> t = 0.048: B done
    # step 4: decode A                                      0.01 + 2 ms            -> t = 0.060: A done
    sched = {"kind": "vllm", "max_num_seqs": 2, "max_num_batched_tokens": 8, "enable_prefix_caching": False}
    df = _run(tmp_path, [(0.0, 10, 3), (0.0, 4, 2)], sched).requests
    assert df["first_token_s"].tolist() == pytest.approx([0.034, 0.034], abs=1e-12)
    assert df["completion_s"].tolist() == pytest.approx([0.060, 0.048], abs=1e-12)


def test_decodes_come_first_and_max_num_seqs_holds_new_prompts(tmp_path):
    # max_num_seqs 1: B may not start until A completes; A: 1 prefill step (0.01 + 5 ms), 1 decode (0.012)
    sched = {"kind": "vllm", "max_num_seqs": 1, "max_num_batched_tokens": 64, "enable_prefix_caching": False}
    df = _run(tmp_path, [(0.0, 5, 2), (0.0, 5, 1)], sched).requests
    assert df["completion_s"].tolist() == pytest.approx([0.027, 0.027 + 0.015], abs=1e-12)


def test_prefix_cache_is_on_by_default_and_counts_hits(tmp_path):
    # 48 shared system-prompt tokens = 3 full blocks of 16: the second request (after the first finished) hits them
    rows = [(0.0, 64, 2), (1.0, 80, 2)]
    kw = {"system_prompt": 48}
    on = _run(tmp_path, rows, {"kind": "vllm"}, **kw)
    off = _run(tmp_path, rows, {"kind": "vllm", "enable_prefix_caching": False}, **kw)
    assert on.requests["prefix_hit_tokens"].tolist() == [0, 48]
    assert on.summary["prefix_cache"]["hit_tokens"] == 48
    assert "prefix_cache" not in off.summary
    # the hit skips 48 tokens of prefill: 48 ms less TTFT at 1 ms per prefill token
    ttft_on, ttft_off = on.requests["ttft_s"][1], off.requests["ttft_s"][1]
    assert ttft_off - ttft_on == pytest.approx(0.048, abs=1e-12)


def test_max_model_len_rejects_longer_requests(tmp_path):
    res = _run(tmp_path, [(0.0, 100, 20), (0.0, 100, 30)], {"kind": "vllm", "max_model_len": 125})
    df = res.requests
    assert df["status"].tolist() == ["completed", "rejected"]
    assert df["reject_reason"].tolist() == ["", "exceeds_context"]


def test_serve_defaults_follow_the_gpu():
    assert VLLMConfig().resolved(catalog.gpu("h100-sxm")) == (1024, 8192)
    assert VLLMConfig().resolved(catalog.gpu("a100-80g")) == (256, 2048)  # vLLM keeps A100 on the small defaults
    assert VLLMConfig().resolved(catalog.gpu("l40s")) == (256, 2048)  # 48 GB
    assert VLLMConfig(max_num_seqs=64).resolved(catalog.gpu("h100-sxm")) == (64, 8192)
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        VLLMConfig(max_num_seqs=512, max_num_batched_tokens=256)


def test_blocks_are_allocated_per_chunk_by_hand(tmp_path):
    """vLLM V1 allocates KV per scheduled chunk (`allocate_slots(request, num_new_tokens)`), not the whole prompt
    on admission. 5 blocks of 16 tokens; A and B each have a 48-token prompt (3 blocks) and 2 output tokens;
    budget 32 tokens per step; 10 ms + 1 ms per prefill token + 2 ms per decode.
    step 1: A admitted with its first chunk's 2 blocks, 32 tokens                   -> 0.042
    step 2: A's last 16 (1 more block), B admitted with 1 block for 16 tokens       -> 0.084: A's first token
    step 3: A's decode takes the last free block; B's next 31 tokens need 2 blocks: nothing newer to preempt,
            so B preempts itself (V1) and gives its block back                       -> 0.096: A done
    step 4: B again from its start (recompute), 32 tokens                             -> 0.138
    step 5: B's last 16                                                               -> 0.164: B's first token
    step 6: B's decode                                                                -> 0.176
    Reserving whole prompts (`sarathi`) instead keeps B out until A has finished: A's first token at 0.068."""
    rows = [(0.0, 48, 2), (0.0, 48, 2)]
    vllm = {"kind": "vllm", "max_num_seqs": 2, "max_num_batched_tokens": 32, "enable_prefix_caching": False}
    df = _run(tmp_path, rows, vllm, kv_blocks=5).requests
    assert df["first_token_s"].tolist() == pytest.approx([0.084, 0.164], abs=1e-12)
    assert df["completion_s"].tolist() == pytest.approx([0.096, 0.176], abs=1e-12)
    assert df["preemptions"].tolist() == [0, 1]
    whole = _run(tmp_path, rows, {"kind": "sarathi", "max_num_seqs": 2, "token_budget": 32}, kv_blocks=5).requests
    assert whole["first_token_s"].tolist() == pytest.approx([0.068, 0.148], abs=1e-12)
    assert whole["preemptions"].tolist() == [0, 0]


def test_chunked_allocation_under_pressure_completes_everything(tmp_path):
    """Under KV pressure with long prompts in small chunks (with and without prefix caching), every request
    completes with all its tokens, preemptions do happen, and the allocator's books balance (an over-allocation
    or over-free raises inside the engine)."""
    import numpy as np

    rng = np.random.default_rng(7)
    times, prompts, outs = sorted(rng.uniform(0, 0.5, 40)), rng.integers(20, 200, 40), rng.integers(1, 30, 40)
    rows = [(float(t), int(p), int(o)) for t, p, o in zip(times, prompts, outs, strict=True)]
    for pc in (False, True):
        sched = {"kind": "vllm", "max_num_seqs": 16, "max_num_batched_tokens": 48, "enable_prefix_caching": pc}
        res = _run(tmp_path, rows, sched, kv_blocks=40, system_prompt=32 if pc else None)
        df = res.requests
        assert (df["status"] == "completed").all()
        assert (df["generated_tokens"] == df["output_tokens"]).all()
        assert df["preemptions"].sum() > 0
        # stepping one iteration at a time decides and allocates exactly as the fast-forwarded run did
        step = _run(tmp_path, rows, sched, kv_blocks=40, system_prompt=32 if pc else None, fast_forward=False)
        cols = ["first_token_s", "completion_s", "preemptions"]
        assert step.requests[cols].equals(df[cols])


def _req(name: str, decoding: bool, holds: int) -> Request:
    """A real `Request` (the compiled core, `sim.core.native`, refuses stand-ins), named by its id ("ABC")."""
    req = Request("ABC".index(name), 0.0, 10 if decoding else 100, 5)
    req.prefill_done, req.blocks = (10 if decoding else 20), holds
    return req


class _View:
    """Just enough of the InstanceView contract to watch VLLMScheduler's preemption order: blocks as a count, the
    blocks each request's next decode slot needs in `needs` (by request id)."""

    def __init__(self, free: int, running: list[Request], needs: list[int]) -> None:
        self.free, self.running = free, list(running)
        self.needs = {r.id: n for r, n in zip(running, needs, strict=True)}
        self.prefilling = [r for r in running if r.in_prefill]
        self.waiting: list[Request] = []
        self.preempted: list[str] = []

    def decode_all(self, plan) -> bool:
        return False

    def decoding(self) -> list[Request]:
        return [r for r in self.running if not r.in_prefill]

    def reserve_decode_slots(self, reqs) -> bool:
        if sum(self.needs[r.id] for r in reqs) > self.free:
            return False
        for r in reqs:
            self.reserve_decode_slot(r)
        return True

    def reserve_decode_slot(self, r: Request) -> bool:
        need = self.needs[r.id]
        if need > self.free:
            return False
        self.free, r.blocks, self.needs[r.id] = self.free - need, r.blocks + need, 0
        return True

    def reserve_prefill(self, r: Request, n: int) -> bool:
        return True

    def preempt(self, r: Request) -> None:
        self.running.remove(r)
        if r in self.prefilling:
            self.prefilling.remove(r)
        self.free, r.blocks = self.free + r.blocks, 0
        self.preempted.append("ABC"[r.id])


def test_a_short_decode_preempts_the_newest_running_request_even_mid_prefill():
    """V1 (`scheduler.py`: `preempted_req = self.running.pop()`): a decode that finds no block preempts the newest
    running request, whatever its phase. A (oldest) needs a block, none is free; C, admitted last, is still in its
    prefill with 2 blocks: C goes, A and B decode. Preempting the newest *decoder* (B) would be the wrong one."""
    from policies.vllm import VLLMScheduler

    a, b, c = _req("A", True, 2), _req("B", True, 1), _req("C", False, 2)
    view = _View(0, [a, b, c], [1, 0, 0])
    plan = VLLMScheduler(VLLMConfig(max_num_seqs=8, max_num_batched_tokens=64)).schedule(view, 0.0)
    assert view.preempted == ["C"]
    assert ["ABC"[r.id] for r in plan.decode] == ["A", "B"] and plan.preempted == 1
    # nothing newer frees enough: the newest goes first, then the asking request itself
    a, c = _req("A", True, 2), _req("C", False, 0)
    view = _View(0, [a, c], [1, 0])
    plan = VLLMScheduler(VLLMConfig(max_num_seqs=8, max_num_batched_tokens=64)).schedule(view, 0.0)
    assert view.preempted == ["C", "A"] and plan.decode == [] and plan.preempted == 2

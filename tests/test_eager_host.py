"""The eager forward's host time (`serving_engine.eager_host_per_layer_s`, sim/costmodel/eager.py): hand-computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from hwprofiles import catalog
from sim.core.speculative import VerifyChunk
from sim.costmodel.build import build_physical
from sim.costmodel.engine import ServingEngineConfig, preset
from sim.costmodel.layout import Layout
from sim.costmodel.memo import MemoCost, memoised
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost
from tests.helpers import scenario, write_csv

FP8 = Quantization(weights="fp8", activations="fp8")


def _cost(kind: str, layout: Layout | None = None, **engine: Any) -> StructuredCost:
    lay = layout or Layout(tp=8, ep=1, moe_tp=8)
    eng = preset(kind, **engine)
    cost = build_physical(
        RooflineCostConfig(), catalog.model("deepseek-v3"), catalog.gpu("b200"), 8, engine=eng, layout=lay, quant=FP8
    )
    assert isinstance(cost, StructuredCost)
    return cost


NO_RESERVE = {"admission_reserve": "none"}  # the `fcfs` scheduler here obeys no reservation (scenario check)


def test_sglang_preset_is_the_cited_measurement() -> None:
    """sgl-project/sglang PR #12160: DeepSeek-V3 (61 layers), one new token, eager 82.6 ms vs graph 23.1 ms."""
    assert preset("sglang").eager_host_per_layer_s == pytest.approx((82.6 - 23.1) / 61 * 1e-3, rel=1e-3)
    assert preset("vllm-v1").eager_host_per_layer_s == 0.0  # compiled forward: not charged
    assert preset("vllm-v0").eager_host_per_layer_s == 0.0
    assert preset("trtllm").eager_host_per_layer_s == 0.0  # no TensorRT-LLM measurement: not charged


@pytest.mark.parametrize("prompt", [1, 1024, 8192])
def test_prefill_step_pays_layers_times_the_term_once(prompt: int) -> None:
    """61 layers x 0.975 ms = 59.475 ms on every prefill step however long, with or without decodes riding along."""
    on, off = _cost("sglang"), _cost("sglang", eager_host_per_layer_s=0.0)
    assert on.L == 61
    for n_decode in (0, 7):
        extra = on.iteration([(prompt, 0)], n_decode, n_decode * 900) - off.iteration(
            [(prompt, 0)], n_decode, n_decode * 900
        )
        assert extra == pytest.approx(61 * 9.75e-4, rel=1e-9)
        assert on.breakdown([(prompt, 0)], n_decode, n_decode * 900)["eager_host"] == pytest.approx(0.059475)
    # two prompts in one step: one forward, one charge
    two = on.iteration([(prompt, 0), (64, 0)], 0, 0) - off.iteration([(prompt, 0), (64, 0)], 0, 0)
    assert two == pytest.approx(0.059475, rel=1e-9)


def test_decode_only_steps_are_not_charged() -> None:
    """Decode-only steps replay the engines' CUDA graphs: the term must not touch them (nor the fast-forward)."""
    on, off = _cost("sglang"), _cost("sglang", eager_host_per_layer_s=0.0)
    ctx = np.array([4 * 1500.0, 4 * 2000.0])
    assert (on.decode_run(4, ctx) == off.decode_run(4, ctx)).all()
    assert on.iteration([], 4, 6000) == off.iteration([], 4, 6000)
    assert on.decode_coeffs(4) == off.decode_coeffs(4)


def test_graph_captured_prefill_is_not_charged() -> None:
    """An engine with piecewise graphs (vLLM V1, capture size 512) pays the term only beyond its capture size."""
    on = _cost("vllm-v1", eager_host_per_layer_s=1e-3)
    off = _cost("vllm-v1")
    assert on.iteration([(500, 0)], 0, 0) == off.iteration([(500, 0)], 0, 0)
    assert on.iteration([(513, 0)], 0, 0) - off.iteration([(513, 0)], 0, 0) == pytest.approx(61e-3, rel=1e-9)


def test_attention_dp_ranks_pay_once() -> None:
    """Attention-DP ranks run their forwards side by side: one charge per step, not one per rank."""
    lay = Layout(tp=1, attention_dp=8, ep=8, moe_tp=1)
    on, off = _cost("trtllm", layout=lay, eager_host_per_layer_s=9.75e-4), _cost("trtllm", layout=lay)
    chunks = [(1024, 0)] * 8
    assert on.iteration(chunks, 0, 0) - off.iteration(chunks, 0, 0) == pytest.approx(61 * 9.75e-4, rel=1e-9)


def _run_ttft(tmp_path: Path, engine: dict[str, Any]) -> list[float]:
    """A MoE model (StructuredCost) on a roofline cost model: request A at 0, B at 50 ms (A's prefill, ~59 ms
    without the term, is still running), each a 1,000-token prompt."""
    sc = scenario(write_csv(tmp_path / "w.csv", [(0.0, 1000, 40), (0.05, 1000, 4)]), cost={"kind": "roofline"})
    sc["model"], sc["hardware"] = "qwen3-30b-a3b", "h100"
    sc["serving_engine"] = engine
    return sim.run(sim.load_scenario(sc)).requests["ttft_s"].tolist()


def test_prompts_wait_for_every_eager_forward_before_theirs(tmp_path: Path) -> None:
    """End to end: A's TTFT grows by exactly 48 layers x 0.975 ms; B, arriving during A's prefill in both runs,
    waits for A's longer step and pays its own: exactly twice that."""
    on = _run_ttft(tmp_path, {**NO_RESERVE, "kind": "sglang"})
    off = _run_ttft(tmp_path, {**NO_RESERVE, "kind": "sglang", "eager_host_per_layer_s": 0.0})
    h = 48 * 9.75e-4
    assert catalog.model("qwen3-30b-a3b").num_layers == 48
    assert off[0] > 0.05  # B arrives while A's prefill runs, with or without the term
    assert on[0] - off[0] == pytest.approx(h, rel=1e-9)
    assert on[1] - off[1] == pytest.approx(2 * h, rel=1e-9)


def test_verify_chunks_are_not_prompt() -> None:
    """A speculative verifier's k + 1 tokens per sequence (`VerifyChunk`) replay SGLang's target-verify graphs
    (up to `cuda_graph_max_batch` sequences): no eager term, no launch term; the same shape as prompt chunks is
    charged. Beyond the captured batch size the verify forward runs eagerly and pays the term."""
    on, off = _cost("sglang"), _cost("sglang", eager_host_per_layer_s=0.0)
    verify = [VerifyChunk((4, 1500)) for _ in range(8)]
    assert on.iteration(verify, 0, 0) == off.iteration(verify, 0, 0)
    assert on.breakdown(verify, 0, 0)["launch"] == 0.0
    prompts = [(4, 1500)] * 8
    assert on.iteration(prompts, 0, 0) - off.iteration(prompts, 0, 0) == pytest.approx(61 * 9.75e-4, rel=1e-9)
    wide = [VerifyChunk((4, 1500)) for _ in range(161)]  # sglang preset: graphs up to 160 sequences
    assert on.iteration(wide, 0, 0) - off.iteration(wide, 0, 0) == pytest.approx(61 * 9.75e-4, rel=1e-9)
    # a prompt chunk beside verify chunks makes an eager step: charged once
    mixed = [*verify, (100, 0)]
    assert on.iteration(mixed, 0, 0) - off.iteration(mixed, 0, 0) == pytest.approx(61 * 9.75e-4, rel=1e-9)


def _run_spec(tmp_path: Path, engine: dict[str, Any]) -> Any:
    rows = [(0.0, 200, 64), (5.0, 3000, 64), (10.0, 100, 64)]  # one at a time: no prefill meets a decode
    sc = scenario(write_csv(tmp_path / "s.csv", rows), cost={"kind": "roofline"})
    sc["model"], sc["hardware"] = "qwen3-30b-a3b", "h100"
    sc["serving_engine"] = engine
    sc["speculative"] = {"kind": "eagle", "num_tokens": 3, "acceptance": 0.7}
    return sim.run(sim.load_scenario(sc)).requests


def test_speculative_tpot_does_not_move_with_the_term(tmp_path: Path) -> None:
    """End to end (the reviewer's case: Qwen3-30B-A3B, H100, SGLang, eagle k = 3): the term lengthens the prefill
    step only; every verify step is priced as without it, so each request's decode time is the same."""
    on = _run_spec(tmp_path, {**NO_RESERVE, "kind": "sglang"})
    off = _run_spec(tmp_path, {**NO_RESERVE, "kind": "sglang", "eager_host_per_layer_s": 0.0})
    assert (on["ttft_s"] > off["ttft_s"]).all()
    assert (off["tpot_s"] > 0).all()
    assert on["tpot_s"].to_numpy() == pytest.approx(off["tpot_s"].to_numpy(), rel=1e-9)


def test_eager_step_does_not_pay_the_launch_term_too() -> None:
    """The eager-minus-graph host time holds the per-layer launches: where it is charged the launch term is not;
    where it is 0 the launch term stays (here a launch time large enough to exceed a 1-token step's kernels)."""
    on = _cost("sglang", launch_per_layer_s=3e-4)
    off = _cost("sglang", launch_per_layer_s=3e-4, eager_host_per_layer_s=0.0)
    b_on, b_off = on.breakdown([(1, 0)], 0, 0), off.breakdown([(1, 0)], 0, 0)
    assert b_off["launch"] > 0.0
    assert b_on["launch"] == 0.0
    assert b_on["eager_host"] == pytest.approx(61 * 9.75e-4)
    diff = on.iteration([(1, 0)], 0, 0) - off.iteration([(1, 0)], 0, 0)
    assert diff == pytest.approx(61 * 9.75e-4 - b_off["launch"], rel=1e-9)


def _dense(engine: ServingEngineConfig) -> RooflineCost:
    cost = build_physical(RooflineCostConfig(), catalog.model("llama-3.1-70b"), catalog.gpu("h100"), 4, engine=engine)
    assert type(cost) is RooflineCost  # a bf16 dense model on plain tp: the plain roofline, memoised
    return cost


def test_plain_roofline_pays_the_term_too() -> None:
    """A bf16 dense model on plain TP pays the same eager host time as a quantised one (80 layers x 0.975 ms):
    switching precision must not remove it."""
    on, off = _dense(preset("sglang")), _dense(preset("sglang", eager_host_per_layer_s=0.0))
    assert on.L == 80
    for prompt in (1, 1024, 8192):
        d = on.iteration([(prompt, 0)], 3, 3000) - off.iteration([(prompt, 0)], 3, 3000)
        assert d == pytest.approx(80 * 9.75e-4 - off.breakdown([(prompt, 0)], 3, 3000)["launch"], rel=1e-9)
    verify = [VerifyChunk((4, 900)) for _ in range(6)]
    assert on.iteration(verify, 0, 0) == off.iteration(verify, 0, 0)
    assert on.iteration([], 6, 5400) == off.iteration([], 6, 5400)


_ENGINES = {
    "sglang": preset("sglang"),
    "sglang-launch": preset("sglang", launch_per_layer_s=3e-4, cuda_graph_max_batch=64),
    "vllm-v1-eager": preset("vllm-v1", eager_host_per_layer_s=1e-3, cuda_graph_max_batch=256),
}
_MEMO = {k: (_dense(e), memoised(_dense(e))) for k, e in _ENGINES.items()}


@pytest.mark.parametrize("name", list(_ENGINES))
@settings(max_examples=40, deadline=None)
@given(
    prefill=st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 8000)), min_size=1, max_size=4),
    n_decode=st.integers(0, 200),
    per_seq=st.integers(1, 4000),
    verify=st.integers(0, 5),
)
def test_memo_prices_the_term_exactly(name: str, prefill: list, n_decode: int, per_seq: int, verify: int) -> None:
    """The pricing memo mirrors the term (rows, derived rows, chunk runs) bit for bit, verify chunks included."""
    cost, memo = _MEMO[name]
    assert isinstance(memo, MemoCost)
    ctx = n_decode * per_seq
    for batch in (prefill, [*prefill, *(VerifyChunk((4, per_seq)) for _ in range(verify))]):
        want = cost.iteration(batch, n_decode, ctx)
        assert memo.iteration(batch, n_decode, ctx).hex() == want.hex()
        assert memo.iteration(batch, n_decode, ctx).hex() == want.hex()  # from the caches
    q, c0 = prefill[0]
    _, durations = memo.chunk_steps(0.0, q, c0, n_decode, ctx, 5, q)
    for j, dt in enumerate(durations):
        assert dt.hex() == cost.iteration([(q, c0 + q * j)], n_decode, ctx + n_decode * j).hex()
    assert not memo.diverged

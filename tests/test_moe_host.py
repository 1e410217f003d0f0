"""vLLM V1's host time of an uncaptured forward, per MoE layer (`serving_engine.eager_host_per_moe_layer_s`,
sim/costmodel/eager.py): hand-computed prices, the capture-size boundary, dense models untouched, and the pricing
memo equal to the uncached cost on such steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprofiles import catalog
from sim.costmodel.build import build_physical
from sim.costmodel.engine import ServingEngineConfig, preset
from sim.costmodel.layout import Layout
from sim.costmodel.memo import MemoCost, memoised
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.costmodel.quant import Quantization

# vllm-project/vllm #56975: (171.0 - 104.9) ms over the 44 MoE layers of GLM-5.3-Flash, by hand
PER_MOE_LAYER = 1.5022727e-3
DSV3_STEP = 0.08713182  # 58 MoE layers x 1.5022727 ms
FP8 = Quantization(weights="fp8", activations="fp8")


def _moe(engine: ServingEngineConfig) -> RooflineCost:
    """DeepSeek-V3 on 8 B200s (61 layers, the first 3 dense: 58 MoE layers)."""
    lay = Layout(tp=8, ep=1, moe_tp=8)
    return build_physical(
        RooflineCostConfig(), catalog.model("deepseek-v3"), catalog.gpu("b200"), 8, engine=engine, layout=lay, quant=FP8
    )


def test_vllm_preset_charges_the_cited_difference_per_moe_layer() -> None:
    """An uncaptured 1,024-token DeepSeek-V3 prompt step under `vllm-v1` pays 58 MoE layers x 1.50227 ms =
    87.132 ms (a /45 normalisation would give 85.2 ms, a whole-host-time reading 225 ms); the same step under
    the other presets pays no MoE term (SGLang pays its own per-layer term, 61 x 0.975 ms)."""
    assert _moe(preset("vllm-v1")).breakdown([(1024, 0)], 0, 0)["eager_host"] == pytest.approx(DSV3_STEP, rel=1e-4)
    assert _moe(preset("sglang")).breakdown([(1024, 0)], 0, 0)["eager_host"] == pytest.approx(61 * 0.975e-3)
    for kind in ("vllm-v0", "trtllm"):
        assert _moe(preset(kind)).breakdown([(1024, 0)], 0, 0)["eager_host"] == 0.0


@pytest.mark.parametrize("prompt", [513, 1024, 8192])
def test_uncaptured_prompt_step_pays_moe_layers_times_the_term(prompt: int) -> None:
    """58 MoE layers x 1.50227 ms = 87.132 ms on a prompt step above the 512-token capture size, with or without
    decodes riding along; the dense first layers pay nothing."""
    on, off = _moe(preset("vllm-v1")), _moe(preset("vllm-v1", eager_host_per_moe_layer_s=0.0))
    assert (on.L, on.model.num_moe_layers) == (61, 58)
    for n_decode in (0, 5):
        got = on.iteration([(prompt, 0)], n_decode, 4000) - off.iteration([(prompt, 0)], n_decode, 4000)
        want = 58 * PER_MOE_LAYER - off.breakdown([(prompt, 0)], n_decode, 4000)["launch"]
        assert got == pytest.approx(want, rel=1e-6)
        assert on.breakdown([(prompt, 0)], n_decode, 4000)["eager_host"] == pytest.approx(DSV3_STEP, rel=1e-4)


def test_captured_steps_are_not_charged() -> None:
    """At or below the capture size a step replays piecewise graphs; a recipe's larger capture size moves the
    boundary (InferenceX `--max-cudagraph-capture-size 2048`); decode-only steps are never charged."""
    on = _moe(preset("vllm-v1"))
    assert on.breakdown([(500, 0)], 12, 12000)["eager_host"] == 0.0  # 512 tokens
    assert on.breakdown([(501, 0)], 12, 12000)["eager_host"] == pytest.approx(DSV3_STEP, rel=1e-4)  # 513 tokens
    big = _moe(preset("vllm-v1", cuda_graph_max_batch=2048))
    assert big.breakdown([(1024, 0)], 0, 0)["eager_host"] == 0.0
    assert big.breakdown([(2049, 0)], 0, 0)["eager_host"] == pytest.approx(DSV3_STEP, rel=1e-4)
    off = _moe(preset("vllm-v1", eager_host_per_moe_layer_s=0.0))
    for n in (1, 64, 600):
        assert on.iteration([], n, n * 1000) == off.iteration([], n, n * 1000)


def test_dense_model_is_not_charged() -> None:
    """Llama-3.1-70B (no MoE layer) under vLLM V1 prices every step as before the term."""
    on = build_physical(
        RooflineCostConfig(), catalog.model("llama-3.1-70b"), catalog.gpu("h100"), 4, engine=preset("vllm-v1")
    )
    off = build_physical(
        RooflineCostConfig(),
        catalog.model("llama-3.1-70b"),
        catalog.gpu("h100"),
        4,
        engine=preset("vllm-v1", eager_host_per_moe_layer_s=0.0),
    )
    for prompt in (100, 1024, 8192):
        assert on.iteration([(prompt, 0)], 3, 3000) == off.iteration([(prompt, 0)], 3, 3000)


# a MoE model priced by the plain roofline (what the pricing memo mirrors): Qwen3-30B-A3B, 48 MoE layers
_PLAIN = RooflineCost(
    RooflineCostConfig(), catalog.model("qwen3-30b-a3b"), catalog.gpu("h100"), 1, engine=preset("vllm-v1")
)
_MEMO = memoised(_PLAIN)


def test_plain_roofline_charges_moe_layers() -> None:
    assert _PLAIN.breakdown([(1024, 0)], 0, 0)["eager_host"] == pytest.approx(48 * PER_MOE_LAYER)
    assert _PLAIN.breakdown([(256, 0)], 0, 0)["eager_host"] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    prefill=st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 8000)), min_size=1, max_size=4),
    n_decode=st.integers(0, 200),
    per_seq=st.integers(1, 4000),
)
def test_memo_prices_the_moe_term_exactly(prefill: list, n_decode: int, per_seq: int) -> None:
    """The pricing memo (rows, cached rows, chunk runs) equals the uncached MoE cost bit for bit on both sides of
    the capture size."""
    assert isinstance(_MEMO, MemoCost)
    ctx = n_decode * per_seq
    want = _PLAIN.iteration(prefill, n_decode, ctx)
    assert _MEMO.iteration(prefill, n_decode, ctx).hex() == want.hex()
    assert _MEMO.iteration(prefill, n_decode, ctx).hex() == want.hex()  # from the caches
    q, c0 = prefill[0]
    _, durations = _MEMO.chunk_steps(0.0, q, c0, n_decode, ctx, 5, q)
    for j, dt in enumerate(durations):
        assert dt.hex() == _PLAIN.iteration([(q, c0 + q * j)], n_decode, ctx + n_decode * j).hex()
    assert not _MEMO.diverged


def test_fit_run_frees_the_moe_term_only_for_moe_runs() -> None:
    """`calibrate fit-run` leaves the per-MoE-layer term out where every run serves a dense model (it never pays
    it, so no run can pin it) and frees it once one run serves a MoE model."""
    from pathlib import Path

    import sim
    from calibrate.fit_run import informed

    quick = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    dense = sim.load_scenario(quick, ["serving_engine={kind: vllm-v1}"])
    moe = sim.load_scenario(quick, ["serving_engine={kind: vllm-v1}", "model=qwen3-30b-a3b"])
    path = "serving_engine.eager_host_per_moe_layer_s"
    assert not informed(path, [(None, dense)])  # type: ignore[list-item]  # the run is not read for this term
    assert informed(path, [(None, dense), (None, moe)])  # type: ignore[list-item]  # the run is not read
    assert informed("serving_engine.eager_host_per_layer_s", [(None, dense)])  # type: ignore[list-item]  # as above

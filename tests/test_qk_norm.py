"""Per-layer QK RMSNorm (MiniMax-M2 `qk_norm_type: per_layer`): under tensor parallelism every attention layer
all-reduces each token's two partial variances; by hand against the same model without it."""

from __future__ import annotations

import pytest

from hwprofiles import catalog
from hwprofiles.hfconfig import spec_from_config
from sim.costmodel.layout import Layout
from sim.costmodel.quant import Quantization
from sim.costmodel.structured import StructuredCost, needs_structure
from tests.test_costmodel_structured import EXACT, GPU, TOY_MOE


def test_minimax_norms_q_and_k_over_all_heads() -> None:
    assert catalog.model("minimax-m2.5").qk_norm_per_layer
    assert not catalog.model("deepseek-v3").qk_norm_per_layer
    cfg = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10}
    assert spec_from_config({**cfg, "use_qk_norm": True, "qk_norm_type": "per_layer"}, "m").qk_norm_per_layer
    assert not spec_from_config({**cfg, "use_qk_norm": True, "qk_norm_type": "per_head"}, "m").qk_norm_per_layer
    assert not spec_from_config(cfg, "m").qk_norm_per_layer


def test_one_more_all_reduce_of_two_floats_per_attention_layer() -> None:
    per_layer = TOY_MOE.model_copy(update={"qk_norm_per_layer": True, "num_layers": 3})
    plain = TOY_MOE.model_copy(update={"num_layers": 3})
    a = StructuredCost(EXACT, per_layer, GPU, 2, layout=Layout(tp=2))
    b = StructuredCost(EXACT, plain, GPU, 2, layout=Layout(tp=2))
    for m in (1, 7, 64):
        extra = a._dense(m)["allreduce"] - b._dense(m)["allreduce"]
        # 3 attention layers, each one all-reduce of m tokens x 2 fp32 values = 8 m bytes
        assert extra == pytest.approx(3 * a.ar.seconds(8.0 * m), rel=1e-12)
        assert extra > 0
    # nothing to reduce on one GPU
    one = StructuredCost(EXACT, per_layer, GPU, 1)
    assert one._dense(7)["allreduce"] == 0.0


def test_a_dense_model_with_it_leaves_the_plain_roofline() -> None:
    dense = catalog.model("llama-3.1-8b")
    assert not needs_structure(dense, Layout(tp=2), Quantization())
    assert needs_structure(dense.model_copy(update={"qk_norm_per_layer": True}), Layout(tp=2), Quantization())


def test_each_qk_reduction_pays_the_fixed_latency() -> None:
    # a fitted profile's extra latency per all-reduce (`ProfileParams.comm_latency_s`, engine syncs): the QK term
    # pays it once per attention layer on top of the reduction itself, like every other all-reduce
    from sim.costmodel.profile import ProfileParams

    per_layer = TOY_MOE.model_copy(update={"qk_norm_per_layer": True, "num_layers": 3})
    plain = TOY_MOE.model_copy(update={"num_layers": 3})
    params = ProfileParams(comm_latency_s=7e-6)
    a = StructuredCost(EXACT, per_layer, GPU, 2, layout=Layout(tp=2), params=params)
    b = StructuredCost(EXACT, plain, GPU, 2, layout=Layout(tp=2), params=params)
    for m in (1, 64):
        extra = a._dense(m)["allreduce"] - b._dense(m)["allreduce"]
        assert extra == pytest.approx(3 * (a.ar.seconds(8.0 * m) + 7e-6), rel=1e-12)
        # one QK reduction costs the same as a hidden-state all-reduce would at the same bytes, latency included
        assert extra / 3 == pytest.approx(a.ar.seconds(8.0 * m) + a.params.comm_latency_s, rel=1e-12)
    # 3 layers: all-reduces after attention and after the MoE, and the QK reduction, each pays it
    zero = StructuredCost(EXACT, per_layer, GPU, 2, layout=Layout(tp=2))
    assert a._dense(1)["allreduce"] - zero._dense(1)["allreduce"] == pytest.approx(9 * 7e-6, rel=1e-9)

"""CUDA graphs per attention-DP rank (`sim.costmodel.eager.busiest_rank`): each DP rank captures and replays its own
graphs at its own batch (vLLM V1 `coordinate_batch_across_dp` pads the ranks to the largest), so whether a step runs
eagerly is decided on the busiest rank's tokens, not on the instance's. Hand-computed boundaries, the DP = 1 reading
unchanged; DP costs are never memoised, and the memo's rows decide capture on the busiest rank too."""

from __future__ import annotations

import pytest

from hwprofiles import catalog
from sim.costmodel.build import build_physical
from sim.costmodel.eager import busiest_rank
from sim.costmodel.engine import preset
from sim.costmodel.layout import Layout
from sim.costmodel.memo import memoised
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.costmodel.quant import Quantization

PER_MOE_LAYER = 1.5022727e-3  # the vllm-v1 preset's `eager_host_per_moe_layer_s` (tests/test_moe_host.py)
FP8 = Quantization(weights="fp8", activations="fp8")


def _minimax(layout: Layout, capture: int = 2048) -> RooflineCost:
    """MiniMax-M2.5 (62 MoE layers) on B200s under vLLM V1 with InferenceX's `--max-cudagraph-capture-size 2048`."""
    engine = preset("vllm-v1", cuda_graph_max_batch=capture)
    gpus = layout.tp * layout.attention_dp
    model = catalog.model("minimax-m2.5")
    return build_physical(
        RooflineCostConfig(), model, catalog.gpu("b200"), gpus, engine=engine, layout=layout, quant=FP8
    )


DP2 = Layout(tp=1, attention_dp=2, ep=2, moe_tp=1)  # vLLM `--data-parallel-size 2 --enable-expert-parallel`
TP2 = Layout(tp=2, attention_dp=1, ep=2, moe_tp=1)  # vLLM `--tensor-parallel-size 2 --enable-expert-parallel`


def test_busiest_rank_by_hand() -> None:
    dp = _minimax(DP2)
    assert busiest_rank(dp, 4096) == 2048 and busiest_rank(dp, 4097) == 2049 and busiest_rank(dp, 1) == 1
    assert busiest_rank(_minimax(TP2), 4097) == 4097


def test_a_dp_step_is_captured_while_each_rank_fits_the_capture_size() -> None:
    """4,096 tokens over 2 DP ranks are 2,048 a rank: captured, no eager host time. The same 4,096 tokens on one
    tensor-parallel rank group exceed the capture size: 62 MoE layers x 1.50227 ms. One token more than 2 x 2,048
    makes the busiest rank 2,049 and the DP step eager too."""
    dp, tp = _minimax(DP2), _minimax(TP2)
    assert dp.model.num_moe_layers == 62
    assert dp.breakdown([(3072, 0)], 1024, 1024 * 1500)["eager_host"] == 0.0
    assert tp.breakdown([(3072, 0)], 1024, 1024 * 1500)["eager_host"] == pytest.approx(62 * PER_MOE_LAYER, rel=1e-6)
    assert dp.breakdown([(3073, 0)], 1024, 1024 * 1500)["eager_host"] == pytest.approx(62 * PER_MOE_LAYER, rel=1e-6)
    # below every boundary both readings agree that the step replays graphs
    assert (
        dp.breakdown([(1000, 0)], 24, 24 * 1500)["eager_host"] == tp.breakdown([(1000, 0)], 24, 24 * 1500)["eager_host"]
    )


def test_launch_term_follows_the_same_rank() -> None:
    """Without an eager host term, an uncaptured step pays the launch-bound excess, L x `launch_per_layer_s` beyond
    its kernels: 400 prompt tokens at a 256-token capture size are 200 a DP rank (replayed, none) but 400 on one
    tensor-parallel group (paid); 600 are 300 a rank (paid)."""
    engine = preset("vllm-v1", eager_host_per_moe_layer_s=0.0, launch_per_layer_s=1e-3, cuda_graph_max_batch=256)
    model, gpu = catalog.model("minimax-m2.5"), catalog.gpu("b200")
    dp = build_physical(RooflineCostConfig(), model, gpu, 2, engine=engine, layout=DP2, quant=FP8)
    tp = build_physical(RooflineCostConfig(), model, gpu, 2, engine=engine, layout=TP2, quant=FP8)
    assert dp.breakdown([(400, 0)], 0, 0)["launch"] == 0.0
    kernels = sum(v for k, v in tp.breakdown([(400, 0)], 0, 0).items() if k not in ("overhead", "launch", "engine_cpu"))
    assert tp.breakdown([(400, 0)], 0, 0)["launch"] == pytest.approx(dp.L * 1e-3 - kernels, rel=1e-9)
    assert dp.breakdown([(600, 0)], 0, 0)["launch"] > 0.0


def test_dp_costs_are_priced_uncached() -> None:
    """A StructuredCost (every attention-DP layout) overrides `breakdown`, so `memoised` returns it as it is: the
    pricing memo never mirrors a DP cost, and its prices are the uncached ones by construction."""
    dp = _minimax(DP2, capture=512)
    assert memoised(dp) is dp


def test_memo_rows_decide_capture_on_the_busiest_rank() -> None:
    """Were a DP cost memoised, the memo's rows (`MemoCost._make_row`) must decide graph capture as the cost does,
    on the busiest rank (`busiest_rank`): a dense Llama-3-8B roofline read as 2 DP ranks (`dp` = 2), launch term
    1 ms a layer beyond a 256-token capture size. 400 prompt tokens are 200 a rank: the cost charges no launch
    term, and the memo keeps the row it made for that shape (deciding on the instance's 400 tokens, it would charge
    L x 1 ms, miss its own check, drop the row and stop deriving rows) and prices the shape as the cost does."""
    engine = preset("vllm-v1", eager_host_per_layer_s=0.0, launch_per_layer_s=1e-3, cuda_graph_max_batch=256)
    cost = build_physical(RooflineCostConfig(), catalog.model("llama-3-8b"), catalog.gpu("h100-sxm"), 1, engine=engine)
    assert type(cost) is RooflineCost
    cost.dp = 2  # type: ignore[attr-defined]  # the DP reading `busiest_rank` takes from a cost's `dp`
    memo = memoised(cost)
    assert memo is not cost
    assert cost.breakdown([(400, 0)], 0, 0)["launch"] == 0.0
    for prefill in ([(400, 0)], [(300, 0), (100, 0)], [(400, 0)]):
        assert memo.iteration(prefill, 0, 0).hex() == cost.iteration(prefill, 0, 0).hex()
    assert (400, 0, 1) in memo._rows and memo._derive is not False  # type: ignore[attr-defined]  # MemoCost's

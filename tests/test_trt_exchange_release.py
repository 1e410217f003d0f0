"""TensorRT-LLM's MoE exchange by release: up to 1.2.0rc2 the all-to-all runs only when ep > experts per token,
else all-gather + reduce-scatter (sim/costmodel/alltoall.py module doc; benchmarks/coverage_trt_release.py reads
the release of a silicon row)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from hwprofiles import catalog
from sim.costmodel.alltoall import moe_comm
from sim.costmodel.comm import AllReduce
from sim.costmodel.engine import preset
from sim.costmodel.layout import Layout

_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_coverage", Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
)
assert _SPEC is not None and _SPEC.loader is not None
cov = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cov)

from coverage_trt_release import parse, release, trt_release_terms  # noqa: E402  (benchmarks/ on the path)


def _comm(ep: int, above_topk: bool, model: str = "deepseek-r1") -> tuple[float, str]:
    m, gpu = catalog.model(model), catalog.gpu("b200_sxm")
    engine = preset("trtllm", moe_alltoall_above_topk=above_topk)
    lay = Layout(tp=1, attention_dp=ep, ep=ep)
    ar = AllReduce(n=ep, bw=gpu.intra_node_bw, nccl_latency_s=32e-6)
    c = moe_comm(engine, m, gpu, lay, m.hidden_size, 0.5625, 0.8, ar)
    return c.seconds(32), c.method


def test_old_release_gathers_at_ep_up_to_topk_and_keeps_the_all_to_all_above() -> None:
    # DeepSeek-R1 routes each token to 8 experts: at ep 8 (one HGX node) TensorRT-LLM <= 1.2.0rc2 all-gathers
    t_old, method_old = _comm(8, True)
    t_new, method_new = _comm(8, False)
    assert (method_old, method_new) == ("allgather_reducescatter", "one_sided")
    # the gather: 2 NCCL latencies + 7 other ranks' 32 tokens of 7168 values each way (fp4 + scales, bf16 back)
    gpu = catalog.gpu("b200_sxm")
    moved = 7 * 32 * 7168 * (0.5625 + 2.0) / (gpu.intra_node_bw * 0.8)
    assert t_old == pytest.approx(2 * 32e-6 + moved, rel=1e-9)
    assert t_old > t_new  # two NCCL collectives cost more than the one-sided kernels' 18 + 31 us at 32 tokens
    # above top-k (ep 16 inside GB200's domain: here on B200 the group of 16 leaves the 8-GPU node) the rule does
    # not apply: the engine's own method stays
    assert _comm(16, True)[1] == "one_sided"


def test_release_names_parse_and_order() -> None:
    assert parse("1.1.0rc2.post2") == (1, 1, 0, 2)
    assert parse("1.2.0rc2.post2") == (1, 2, 0, 2)
    assert parse("1.2.0rc6.post3") == (1, 2, 0, 6)
    assert parse("1.1.0-dev.2") == (1, 1, 0, -1)
    assert parse("1.1.0") == (1, 1, 0, 99) and (1, 1, 0, 99) < (1, 2, 0, 0)  # a final release after its rcs
    assert parse("0.8.1.post1") is None and parse("gpt-oss-dev") is None  # Dynamo runtime, dev image


def test_release_read_from_version_or_image(silicon_rows: pd.DataFrame) -> None:
    # backend_version 1.1.0rc2.post2: the rule before PR #8950
    r = silicon_rows.loc["2026_03_25_deepseek_r1_h200_sxm_trtllm_fp8_agg_8192x1024_c128_tp8_0_ep8_0_1246"]
    assert release(r) == (1, 1, 0, 2) and trt_release_terms(r) == {"moe_alltoall_above_topk": True}
    # 1.2.0rc6.post3: after it, no term
    r = silicon_rows.loc["2026_03_25_deepseek_r1_b200_sxm_trtllm_fp4_agg_1024x8192_c64_tp8_0_ep8_0_977"]
    assert release(r) == (1, 2, 0, 6) and trt_release_terms(r) == {}
    # the image alone names the release; a Dynamo runtime image does not name TensorRT-LLM's
    base = r.copy()
    base["backend_version"] = float("nan")
    base["silicon_data_source"] = "x=1; image=nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc2.post2"
    assert release(base) == (1, 2, 0, 2) and trt_release_terms(base) == {"moe_alltoall_above_topk": True}
    base["silicon_data_source"] = "x=1; image=nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post1"
    assert release(base) is None and trt_release_terms(base) == {}
    base["backend_version"] = "0.8.1.post1"
    assert release(base) is None

"""The same vLLM deployment measured with its 1k prompt steps outside and inside CUDA graphs: the measured TTFT drop.

    python benchmarks/coverage_capture_contrast.py [--clients 8]

Five InferenceX vLLM recipe versions add `--max-cudagraph-capture-size 2048` (coverage_recipes.py: MiniMax-M2.5
fp8/fp4 on B200/B300, Kimi-K2.5 fp4 on B200), so a 1,024-token prompt step replays piecewise graphs in rows
measured from those dates and runs the compiled forward ungraphed before them (vLLM's default capture size is at
most 512). `serving_engine.eager_host_per_moe_layer_s` (1.50 ms per MoE layer, cited from vllm-project/vllm
#56975, not fitted) predicts the drop between the two in series: MoE layers x 1.50 ms (MiniMax-M2.5 62 x 1.50 =
93 ms, Kimi-K2.5 60 x 1.50 = 90 ms). The overlap reading, max(kernels, H) with H the same source's whole eager
host-paced time (171.0 ms / 44 MoE layers = 3.89 ms per MoE layer, `coverage_miss_split.WHOLE_HOST_PER_MOE_LAYER_MS`),
predicts max(K, MoE layers x 3.89 ms) - K, K = one simulated 1k prompt step's kernels of the graphed side (no
host term, no launch term). Printed per deployment (model, GPU, precision, tp, ep, clients, isl 1,024 / osl
1,024): the median measured TTFT of each side, its vLLM release and the drop, against both predictions. Rows
without a `measured=` date are left out (the side cannot be told).

`--long-step` checks both readings against the source's second point instead: its 16,384-token ungraphed steps
span 334 ms of CUDA events (host 332 ms). Neither side of that step was measured graphed, so the rules need its
kernels K16 = r x 104.9 ms, r = K(16,384-token step) / K(4,096-token step). Series needs r = (334 - 66.1) / 104.9
= 2.55, overlap r = 334 / 104.9 = 3.18. GLM-5.3-Flash is not in the catalogue: r is printed as servesim prices it
for five catalogue MoE models on 4 GB200s (TP 4, fp8, 60 decodes at 8k context riding along; the 4k step a chunk
of an 8k prompt, the 16k step two 8k prompts), with each rule's 16k prediction.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_miss_split import WHOLE_HOST_PER_MOE_LAYER_MS, kernels_and_host
from coverage_recipes import measured_date, recipe_terms

from hwprofiles import catalog
from sim.costmodel.engine import preset

MODELS = {"MiniMaxAI/MiniMax-M2.5": "minimax-m2.5", "moonshotai/Kimi-K2.5": "kimi-k2.5"}


def table(clients: int) -> pd.DataFrame:
    d = pd.read_csv(cov.CSV)
    d = d[(d["backend"] == "vllm") & (d["mode"] == "agg") & (d["isl"] == 1024) & (d["osl"] == 1024)].copy()
    d = d[d["model_path"].isin(list(MODELS))]
    d["date"] = d.apply(measured_date, axis=1)
    d = d[d["date"] != ""]
    d["c"] = d.apply(cov.concurrency, axis=1)
    d = d[d["c"] <= clients]
    cap = d.apply(lambda r: recipe_terms(r, int(r["c"]))[0].get("cuda_graph_max_batch", 512), axis=1)
    d["side"] = ["graphed" if c >= 1024 else "ungraphed" for c in cap]
    per_layer = preset("vllm-v1").eager_host_per_moe_layer_s
    rows = []
    keys = ["model_path", "system", "precision", "tp_size", "moe_ep_size", "c"]
    for k, g in d.groupby(keys):
        if g["side"].nunique() < 2:
            continue
        u, v = g[g["side"] == "ungraphed"], g[g["side"] == "graphed"]
        moe = catalog.model(MODELS[str(k[0])]).num_moe_layers
        kh = kernels_and_host(v.iloc[0])
        k1 = kh["k1_ms"] if kh else float("nan")
        rows.append(
            {
                "model": str(k[0]).split("/")[-1],
                "gpu": k[1],
                "prec": k[2],
                "tp": int(k[3]),
                "ep": int(k[4]),
                "clients": int(k[5]),
                "ungraphed_ms": u["silicon_ttft_ms"].median(),
                "ungraphed_release": ",".join(sorted(set(u["backend_version"].astype(str)))),
                "graphed_ms": v["silicon_ttft_ms"].median(),
                "graphed_release": ",".join(sorted(set(v["backend_version"].astype(str)))),
                "drop_ms": u["silicon_ttft_ms"].median() - v["silicon_ttft_ms"].median(),
                "series_ms": moe * per_layer * 1e3,
                "kernels_1k_ms": k1,
                "overlap_ms": max(k1, moe * WHOLE_HOST_PER_MOE_LAYER_MS) - k1,
            }
        )
    return pd.DataFrame(rows)


def long_step() -> pd.DataFrame:
    """Servesim's kernel ratio of a 16k to a 4k ungraphed step on 4 GB200s, and each rule's 16k step from it."""
    from sim.costmodel.build import build_physical
    from sim.costmodel.layout import Layout
    from sim.costmodel.models import RooflineCostConfig
    from sim.costmodel.quant import Quantization

    fp8, eng = Quantization(weights="fp8", activations="fp8"), preset("vllm-v1", eager_host_per_moe_layer_s=0.0)
    eng = eng.model_copy(update={"launch_per_layer_s": 0.0})
    rows = []
    for name in ("qwen3.5-397b-a17b", "glm-5", "minimax-m2.5", "deepseek-v3", "qwen3-235b-a22b"):
        for ep in (1, 4):
            lay = Layout(tp=4, ep=ep, moe_tp=4 // ep)
            c = build_physical(
                RooflineCostConfig(), catalog.model(name), catalog.gpu("gb200"), 4, engine=eng, layout=lay, quant=fp8
            )
            k4 = (c.iteration([(4096, 0)], 60, 60 * 8000) + c.iteration([(4096, 4096)], 60, 60 * 8000)) / 2
            r = c.iteration([(8192, 0), (8192, 0)], 60, 60 * 8000) / k4
            series, overlap = r * 104.9 + (171.0 - 104.9), max(r * 104.9, 171.0)
            rows.append({"model": name, "ep": ep, "ratio": r, "series_16k_ms": series, "overlap_16k_ms": overlap})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--long-step", action="store_true", help="the source's 16k point (334 ms) under both rules")
    args = ap.parse_args()
    if args.long_step:
        print(long_step().round(2).to_string(index=False), "\nmeasured: 334 ms (events), 332 ms (host)")
        return
    t = table(args.clients)
    print(t.round(1).to_string(index=False))
    for gpu, g in t.groupby("gpu"):
        print(f"{gpu}: median drop {g['drop_ms'].median():.1f} ms over {len(g)} deployments")


if __name__ == "__main__":
    main()

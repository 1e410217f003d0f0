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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    t = table(args.clients)
    print(t.round(1).to_string(index=False))
    for gpu, g in t.groupby("gpu"):
        print(f"{gpu}: median drop {g['drop_ms'].median():.1f} ms over {len(g)} deployments")


if __name__ == "__main__":
    main()

"""Where vLLM's TPOT error sits: the vLLM rows of a results file split by group, with the MoE kernel vLLM runs.

    python benchmarks/tpot_vllm_split.py RESULTS [--other RESULTS_AFTER] [--json out.json]

RESULTS is a `coverage.py --json` file (its `errors.per_row`) or a `tpot_groups.py --json` list. Each vLLM row
is joined to its silicon-file fields and to the layout coverage.py simulates (`coverage.scenario`): model class
(dense / MoE), GPU, precision, the layout as run (tp, attention dp, ep, moe_tp), sequences per attention rank
(clients / instances / dp) in bands, the sign of the error, and the routed-expert kernel family vLLM's backend
oracle picks for the precision and GPU (`moe_kernel`). Per group: rows, median signed and |TPOT| error (and the
other file's on the same rows). For the rows at <= 8 sequences per rank, the step time the simulation lacks
(measured - simulated TPOT) per MoE layer: a per-layer constant would be one number across GPUs and kernels.
A diagnostic: nothing is fitted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

BANDS = [0, 8, 64, 256, 10**6]
BAND_NAMES = ["<=8", "9-64", "65-256", ">256"]
HOPPER = {"h100_sxm", "h200_sxm"}


def moe_kernel(precision: str, gpu: str, ep: int) -> str:
    """The routed-expert kernel family vLLM's backend oracle picks with no `--moe-backend` / env override.

    vllm/model_executor/layers/fused_moe/oracle/fp8.py `_get_priority_backends`: block FP8 on Hopper (SM 9.0)
    puts Triton first without EP and FlashInfer CUTLASS first with EP; elsewhere the order starts with
    FlashInfer TRTLLM-Gen, then FlashInfer CUTLASS, DeepGEMM, Triton. oracle/nvfp4.py: NVFP4 tries FlashInfer
    TRTLLM-Gen first. Weight-only int4 (compressed-tensors WNA16, Kimi-K2.5's release) runs the Marlin MoE
    kernel (oracle/int_wna16.py). Every one of them is one grouped launch per GEMM over all active experts.
    The oracle is read at vLLM main; which release first had this order is not checked here."""
    if precision == "fp8":
        if gpu in HOPPER:
            return "flashinfer-cutlass" if ep > 1 else "triton"
        return "flashinfer-trtllm"
    if precision == "fp4":
        return "flashinfer-trtllm"
    if precision == "int4":
        return "marlin"
    return "other"


def band(seqs_per_rank: float) -> str:
    """The sequences-per-rank band of a row."""
    return str(pd.cut([seqs_per_rank], BANDS, labels=BAND_NAMES)[0])


def deficit_per_layer_us(measured_ms: float, simulated_ms: float, layers: float) -> float:
    """Microseconds a step lacks per layer: (measured - simulated TPOT) / layers; negative if too slow."""
    if layers <= 0:
        raise ValueError("layers must be positive")
    return (measured_ms - simulated_ms) * 1e3 / layers


def load(path: Path) -> pd.DataFrame:
    """Per-row results of a coverage.py (dict) or tpot_groups.py (list) --json file."""
    data = json.loads(path.read_text())
    rows = data["errors"]["per_row"] if isinstance(data, dict) else data
    return pd.DataFrame([r for r in rows if r.get("tpot_err") is not None])


def annotate(res: pd.DataFrame) -> pd.DataFrame:
    """vLLM rows of `res` with the groups above (needs coverage.py's scenario builder)."""
    import coverage as cov

    from sim.cluster.pools import pool_specs
    from sim.config.scenario import load_scenario

    df = pd.read_csv(cov.CSV).set_index("id")
    out = []
    for _, r in res[res["backend"] == "vllm"].iterrows():
        row = df.loc[r["id"]].copy()
        row["id"] = r["id"]
        sc = cov.scenario(row, cov._fixed_workload(1, row))
        cl = sc.get("cluster", {})
        tp, dp, ep = int(cl.get("tp", 1)), int(cl.get("attention_dp", 1)), int(cl.get("ep", 1))
        spec = pool_specs(load_scenario(sc))[0].cost.model
        seqs = cov.concurrency(row) / max(1, cov.instances(row)) / dp
        prec = str(row["precision"])
        out.append(
            {
                **r.to_dict(),
                "kind": "moe" if spec.is_moe else "dense",
                "precision": prec,
                "layout": f"tp{tp} dp{dp} ep{ep} moe_tp{int(cl.get('moe_tp', tp if ep == 1 else 1))}",
                "dp": dp,
                "seqs_per_rank": seqs,
                "band": band(seqs),
                "sign": "fast" if r["tpot_err"] < 0 else "slow",
                "moe_kernel": moe_kernel(prec, str(row["system"]), ep) if spec.is_moe else "dense",
                "layers": float(spec.num_moe_layers or spec.num_layers),
                "deficit_us_per_layer": deficit_per_layer_us(
                    float(r["silicon_tpot_ms"]), float(r["tpot_ms"]), float(spec.num_moe_layers or spec.num_layers)
                ),
            }
        )
    return pd.DataFrame(out)


def groups(a: pd.DataFrame, other: pd.DataFrame | None = None) -> dict[str, list[dict[str, Any]]]:
    """Median signed and |TPOT| error per group (and the other file's on the same rows)."""
    if other is not None:
        a = a.merge(other[["id", "tpot_err"]].rename(columns={"tpot_err": "after"}), on="id", how="inner")
    from tpot_groups import group_stats  # (here: it imports coverage.py, as `annotate` does)

    keys = ["kind", "gpu", "precision", "moe_kernel", "layout", "band", "sign", ["moe_kernel", "band"]]
    out: dict[str, list[dict[str, Any]]] = {}
    for k in keys:
        name = k if isinstance(k, str) else " x ".join(k)
        rows = []
        for g, t in group_stats(a, k, "tpot_err", other is not None, observed=True).iterrows():
            d = {"group": g if isinstance(g, str) else " / ".join(map(str, g)), "n": int(t["n"])}
            d["signed"], d["abs"] = float(t["signed"]), float(t["abs"])
            if other is not None:
                d["after_signed"], d["after_abs"] = float(t["signed_after"]), float(t["abs_after"])
            rows.append(d)
        out[name] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--other", type=Path, default=None, help="a second results file: its error on the same rows")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    for p in (args.results, args.other):
        if p is not None and not p.exists():
            print(f"no such results file: {p}", file=sys.stderr)
            sys.exit(2)
    a = annotate(load(args.results))
    if a.empty:
        print(f"no vLLM rows with a TPOT in {args.results}", file=sys.stderr)
        sys.exit(2)
    other = load(args.other) if args.other else None
    g = groups(a, other)
    for name, rows in g.items():
        print(f"\n| {name} | n | signed | abs |" + (" after signed | after abs |" if other is not None else ""))
        print("|---|---|---|---|" + ("---|---|" if other is not None else ""))
        for d in rows:
            tail = f" {d['after_signed']:+.1%} | {d['after_abs']:.1%} |" if other is not None else ""
            print(f"| {d['group']} | {d['n']} | {d['signed']:+.1%} | {d['abs']:.1%} |{tail}")
    small = a[(a["kind"] == "moe") & (a["band"] == "<=8")]
    if len(small):
        print("\n<= 8 sequences per rank, MoE: measured - simulated TPOT per MoE layer (us)")
        for k, x in small.groupby("moe_kernel"):
            v = x["deficit_us_per_layer"].to_numpy()
            print(f"  {k:18} n={len(v):3}  median {np.median(v):6.1f}  range {v.min():6.1f} .. {v.max():6.1f}")
    if args.json:
        cols = ["id", "model", "gpu", "clients", "kind", "precision", "layout", "seqs_per_rank", "band", "sign"]
        cols += ["moe_kernel", "tpot_err", "deficit_us_per_layer"]
        args.json.write_text(json.dumps({"groups": g, "rows": a[cols].to_dict(orient="records")}, indent=1))


if __name__ == "__main__":
    main()

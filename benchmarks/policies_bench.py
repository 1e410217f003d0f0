"""Every batch scheduler on the same traffic at three loads (issue 4).

    python benchmarks/policies_bench.py            # all runs (2 processes), rewrites the results in POLICIES.md
    python benchmarks/policies_bench.py --jobs 4   # more processes

Workloads (both on one H100-SXM serving Llama-3.1-8B, `scenarios/policies.yaml`):
  azure  — the Azure 2023 conversation trace as recorded (output lengths: mean 211, CV 0.77, max 1000);
  heavy  — the same arrival times with heavy-tailed lengths (prompt lognormal median 512 σ 0.6; output
           lognormal median 48 σ 1.6, ≤ 4096: mean ≈ 163, CV ≈ 2.4), the regime MLFQ is designed for.
Loads are `workload.arrival.time_scale` values (smaller = faster arrivals). Writes
benchmarks/results/policies_results.json, benchmarks/policies.png and the generated part of POLICIES.md.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks"

SCHEDULERS: dict[str, dict[str, Any]] = {
    "fcfs": {"kind": "fcfs"},
    # FIFO through the same rank-ordered engine as sjf/srpt/ltr/mlfq/priority (mixed prefill + decode
    # batches): `priority` with both classes at one priority ranks by arrival. Separates the effect of the
    # order from that of the batch shape.
    "fifo-mixed": {"kind": "priority"},
    "sarathi": {"kind": "sarathi", "token_budget": 512},
    "static-dynamic": {"kind": "static", "mode": "dynamic", "batch_size": 256},
    "static-fixed": {"kind": "static", "mode": "fixed", "batch_size": 32},
    "static-elastic": {"kind": "static", "mode": "elastic", "batch_size": 256},
    "sjf": {"kind": "sjf"},
    "srpt": {"kind": "srpt"},
    "ltr": {"kind": "ltr"},  # with vllm-ltr's starvation guard (starv 200, period 10)
    "ltr-noguard": {"kind": "ltr", "starvation_iters": None},
    "mlfq": {"kind": "mlfq"},
    "priority": {"kind": "priority"},
    "length_group": {"kind": "length_group"},
}
# the preemptive learned/MLFQ policies with recompute instead of swap (an ablation, azure only)
ABLATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "ltr+recompute": ({"kind": "ltr"}, "recompute"),
    "mlfq+recompute": ({"kind": "mlfq"}, "recompute"),
}
LOADS = {"azure": [0.4, 0.35, 0.3], "heavy": [0.2, 0.18, 0.16]}
HEAVY = {
    "kind": "lognormal",
    "prompt_median": 512,
    "prompt_sigma": 0.6,
    "output_median": 48,
    "output_sigma": 1.6,
    "max_output": 4096,
}


def one(job: tuple[str, float, str, dict[str, Any], str]) -> dict[str, Any]:
    import sim

    workload, scale, name, sched, preemption = job
    sc = sim.load_scenario(ROOT / "scenarios" / "policies.yaml").model_dump(mode="json")
    sc["workload"]["arrival"]["time_scale"] = scale
    if workload == "heavy":
        sc["workload"]["lengths"] = HEAVY
    sc["scheduler"] = sched
    sc["kv_cache"]["preemption"] = preemption
    if name == "fifo-mixed":
        for c in sc["workload"]["classes"]:
            c["priority"] = 0
    t0 = time.perf_counter()
    res = sim.run(sc)
    s = res.summary
    m, c = s["metrics"], s["classes"]
    pick = ("mean", "p50", "p99")
    return {
        "workload": workload,
        "time_scale": scale,
        "scheduler": name,
        "preemption": preemption,
        "arrival_rps": float(len(res.requests) / res.requests["arrival_s"].max()),
        "ttft": {k: m["ttft_s"][k] for k in pick},
        "e2e": {k: m["e2el_s"][k] for k in pick},
        "tpot_mean": m["tpot_s"]["mean"],
        "ls_ttft": {k: c["ls"]["metrics"]["ttft_s"][k] for k in pick},
        "be_ttft": {k: c["be"]["metrics"]["ttft_s"][k] for k in pick},
        "ls_slo_attainment": c["ls"]["slo_attainment"],
        "throughput_tok_s": s["throughput"]["output_tokens_per_s"],
        "preemptions": s["counts"]["preemptions"],
        "completed": s["counts"]["completed"],
        "wall_s": time.perf_counter() - t0,
    }


def jobs() -> list[tuple[str, float, str, dict[str, Any], str]]:
    out = []
    for workload, scales in LOADS.items():
        for scale in scales:
            for name, sched in SCHEDULERS.items():
                out.append((workload, scale, name, sched, "swap"))
            if workload == "azure":
                for name, (sched, pre) in ABLATIONS.items():
                    out.append((workload, scale, name, sched, pre))
    return out


def _s(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def tables(rows: list[dict[str, Any]]) -> str:
    """Markdown: one table per workload and load."""
    parts = [
        "Latencies in seconds (TPOT in ms); LS = the latency-sensitive class; preemptions = KV evictions"
        " (swap or recompute), not a request merely left out of a batch; tok/s = output tokens per second."
    ]
    for workload, scales in LOADS.items():
        for scale in scales:
            sel = [r for r in rows if r["workload"] == workload and r["time_scale"] == scale]
            if not sel:
                continue
            rps = sel[0]["arrival_rps"]
            parts.append(f"\n**{workload}, time_scale {scale}** ({rps:.1f} req/s offered)\n")
            parts.append(
                "| scheduler | TTFT mean | TTFT p99 | E2E mean | E2E p99 | TPOT mean (ms) | LS TTFT mean | "
                "LS TTFT p99 | tok/s | preemptions |"
            )
            parts.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in sel:
                parts.append(
                    f"| {r['scheduler']} | {_s(r['ttft']['mean'])} | {_s(r['ttft']['p99'])} | {_s(r['e2e']['mean'])} | "
                    f"{_s(r['e2e']['p99'])} | {r['tpot_mean'] * 1000:.1f} | {_s(r['ls_ttft']['mean'])} | "
                    f"{_s(r['ls_ttft']['p99'])} | {r['throughput_tok_s']:.0f} | {r['preemptions']} |"
                )
    return "\n".join(parts) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("ttft", "mean", "TTFT mean"),
        ("ttft", "p99", "TTFT p99"),
        ("e2e", "mean", "E2E mean"),
        ("e2e", "p99", "E2E p99"),
    ]
    fig, axes = plt.subplots(len(LOADS), 4, figsize=(20, 5 * len(LOADS)), squeeze=False)
    names = list(SCHEDULERS) + list(ABLATIONS)
    cmap = plt.get_cmap("tab20")
    for i, workload in enumerate(LOADS):
        for j, (what, stat, label) in enumerate(metrics):
            ax = axes[i][j]
            for k, name in enumerate(names):
                sel = sorted(
                    (r for r in rows if r["workload"] == workload and r["scheduler"] == name),
                    key=lambda r: r["arrival_rps"],
                )
                if not sel:
                    continue
                style = "--" if name in ABLATIONS else "-"
                ax.plot(
                    [r["arrival_rps"] for r in sel],
                    [r[what][stat] for r in sel],
                    style,
                    marker="osD^v<>pP*Xhd8"[k % 14],
                    color=cmap(k),
                    label=name,
                )
            ax.set_yscale("log")
            ax.set_xlabel("offered load (req/s)")
            ax.set_ylabel(f"{label} (s)")
            ax.set_title(f"{workload}: {label}")
            ax.grid(True, which="both", alpha=0.3)
        axes[i][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated scheduler names: rerun these, keep the other results")
    ap.add_argument("--report", action="store_true", help="only rebuild the tables and plot from the saved results")
    args = ap.parse_args()
    if args.report:
        write_report(json.loads((OUT / "results" / "policies_results.json").read_text()))
        return
    work = jobs()
    old: list[dict[str, Any]] = []
    if args.only:
        names = set(args.only.split(","))
        work = [w for w in work if w[2] in names]
        res = OUT / "results" / "policies_results.json"
        old = [r for r in json.loads(res.read_text()) if r["scheduler"] not in names] if res.exists() else []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = []
        for r in pool.map(one, work):
            rows.append(r)
            print(
                f"{r['workload']:5s} {r['time_scale']:<5} {r['scheduler']:15s} TTFT {r['ttft']['mean']:9.2f} "
                f"E2E {r['e2e']['mean']:9.2f} ({r['wall_s']:.0f} s)",
                flush=True,
            )
    order = {(w[0], w[1], w[2]): i for i, w in enumerate(jobs())}
    rows = sorted(old + rows, key=lambda r: order.get((r["workload"], r["time_scale"], r["scheduler"]), 1 << 30))
    (OUT / "results" / "policies_results.json").write_text(json.dumps(rows, indent=1) + "\n")
    write_report(rows)
    print(f"{len(rows)} runs in {time.perf_counter() - t0:.0f} s")


def write_report(rows: list[dict[str, Any]]) -> None:
    """The plot, and the generated tables between the markers of POLICIES.md (the prose is kept)."""
    plot(rows, OUT / "policies.png")
    md = OUT / "POLICIES.md"
    text = md.read_text() if md.exists() else "<!-- results:start -->\n<!-- results:end -->\n"
    body = f"<!-- results:start -->\n{tables(rows)}\n<!-- results:end -->"
    md.write_text(re.sub(r"<!-- results:start -->.*<!-- results:end -->", lambda _: body, text, flags=re.S))


if __name__ == "__main__":
    main()

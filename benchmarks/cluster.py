"""Cluster shapes against the papers' headline findings (issue 5): writes benchmarks/CLUSTER.md's tables.

    python benchmarks/cluster.py             # every experiment (2 processes), ≈ 5 min on 2 cores
    python benchmarks/cluster.py --jobs 1    # one process
    python benchmarks/cluster.py --only disagg,prefix

Experiments (Llama-3.1-8B, roofline cost model, vLLM defaults unless said):
  disagg — DistServe/Splitwise at equal GPU count: 4 x H100 colocated (fcfs, sarathi) vs disaggregated
           2P:2D and 1P:3D / 3P:1D, Poisson arrivals with ShareGPT lengths, a rate sweep; TTFT and TBT
           (inter-token latency) percentiles, SLO attainment and goodput at 90% attainment.
  cost   — Splitwise at (about) equal cost: colocated H100s vs HH and HA (H100 prefill, A100 decode) on
           the Azure 2023 conversation trace sped up; goodput per $/hour; serialized vs layer-wise copy.
  llumnix — migration under skewed load: random dispatch of bursty, long-tailed traffic on memory-tight
           replicas, with and without live migration, and Llumnix's freeness dispatch.
  prefix — prefix caching on the Mooncake conversation trace: off, GPU-only LRU, with a host-memory tier,
           round-robin-like vs prefix-affinity routing; hit rate and TTFT.
Writes benchmarks/results/cluster_results.json, benchmarks/plots/cluster_*.png and the generated blocks of
benchmarks/CLUSTER.md (text outside the `<!-- gen:NAME -->` blocks is kept).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks"
PAGE = OUT / "CLUSTER.md"
RESULTS = OUT / "results" / "cluster_results.json"

MODEL, H100, A100 = "llama-3.1-8b", "h100-sxm", "a100-80g"
LR = {"kind": "least_requests"}

# -- experiment definitions -----------------------------------------------------------------------------
DISAGG_SLO = {"ttft_s": 0.25, "tpot_s": 0.025}  # DistServe-style chat SLOs, scaled to an 8B model on H100
DISAGG_RATES = [8, 12, 16, 20, 24, 28, 32]
DISAGG = {
    "colocated 4 fcfs": {"cluster": {"instances": 4, "router": LR}},
    "colocated 4 sarathi-512": {
        "cluster": {"instances": 4, "router": LR},
        "scheduler": {"kind": "sarathi", "token_budget": 512},
    },
    "disagg 2P:2D": {"cluster": {"router": LR, "prefill": {"instances": 2}, "decode": {"instances": 2}}},
    "disagg 1P:3D": {"cluster": {"router": LR, "prefill": {"instances": 1}, "decode": {"instances": 3}}},
    "disagg 3P:1D": {"cluster": {"router": LR, "prefill": {"instances": 3}, "decode": {"instances": 1}}},
}

COST_SLO = {"ttft_s": 0.5, "tpot_s": 0.05}
# Splitwise's SLOs: percentiles no worse than these multiples of the same percentile on an uncontended
# machine (here one A100 serving the same trace one request at a time, the slowest GPU in the comparison)
SPLITWISE_SLO = {
    ("ttft_s", "p50"): 2.0,
    ("ttft_s", "p90"): 3.0,
    ("ttft_s", "p99"): 6.0,
    ("itl_s", "p50"): 1.25,
    ("itl_s", "p90"): 1.5,
    ("itl_s", "p99"): 5.0,
}
COST_SCALES = [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.12, 0.1, 0.085, 0.075]  # Azure conv at 1x .. 13x its speed
IB = {"bandwidth_gbps": 200, "latency_s": 0.001}  # HDR InfiniBand per GPU, 1 ms per copy
COST = {
    "colocated 3 x H100": {"cluster": {"instances": 3, "router": LR}},
    "colocated 5 x A100": {"hardware": A100, "cluster": {"instances": 5, "router": LR}},
    "HH 2P:1D H100": {"cluster": {"router": LR, "prefill": {"instances": 2}, "decode": {"instances": 1}, "link": IB}},
    "HA 1P H100 : 3D A100": {
        "cluster": {"router": LR, "prefill": {"instances": 1}, "decode": {"instances": 3, "hardware": A100}, "link": IB}
    },
    "HA 2P H100 : 2D A100": {
        "cluster": {"router": LR, "prefill": {"instances": 2}, "decode": {"instances": 2, "hardware": A100}, "link": IB}
    },
    "HA 2P:2D serialized": {
        "cluster": {
            "router": LR,
            "prefill": {"instances": 2},
            "kv_transfer": "serialized",
            "decode": {"instances": 2, "hardware": A100},
            "link": IB,
        }
    },
}

LLUMNIX_RATES = [8, 9, 10, 11]
LLUMNIX_BASE: dict[str, Any] = {
    "workload": {
        "num_requests": 3000,
        "arrival": {"kind": "gamma", "rate": 9, "cv": 3},
        "lengths": {
            "kind": "lognormal",
            "prompt_median": 512,
            "prompt_sigma": 1.0,
            "output_median": 256,
            "output_sigma": 1.0,
            "max_prompt": 8192,
            "max_output": 4096,
        },
    },
    "kv_cache": {"gpu_memory_utilization": 0.27},
    "slo": {"ttft_s": 2.0, "tpot_s": 0.1},
}
MIG = {"kind": "llumnix", "interval_s": 0.1, "threshold": 3.0, "max_stages": 3, "final_blocks": 4}
NET = {"bandwidth_gbps": 100, "latency_s": 0.002}
LLUMNIX = {
    "random": {"cluster": {"instances": 4, "router": {"kind": "random"}, "link": NET}},
    "random + migration": {"cluster": {"instances": 4, "router": {"kind": "random"}, "migration": MIG, "link": NET}},
    "llumnix dispatch": {"cluster": {"instances": 4, "router": {"kind": "llumnix"}, "link": NET}},
    "llumnix dispatch + migration": {
        "cluster": {"instances": 4, "router": {"kind": "llumnix"}, "migration": MIG, "link": NET}
    },
}

PREFIX_BASE: dict[str, Any] = {
    "workload": {"num_requests": 3000, "arrival": {"kind": "trace", "path": "mooncake-conv", "format": "mooncake"}},
    "scheduler": {"kind": "sarathi", "token_budget": 2048},
    "slo": {"ttft_s": 2.0, "tpot_s": 0.1},
}
AFFINITY = {"kind": "prefix_affinity", "max_imbalance": 8, "index_tokens": 10**9}


def _pc(host: float = 0.0) -> dict[str, Any]:
    return {"gpu_memory_utilization": 0.9, "prefix_cache": {"block_tokens": 512, "host_memory_gb": host}}


PREFIX = {
    "no cache": {"cluster": {"instances": 4, "router": LR}},
    "GPU cache, least-requests": {"cluster": {"instances": 4, "router": LR}, "kv_cache": _pc()},
    "GPU cache, prefix-affinity": {"cluster": {"instances": 4, "router": AFFINITY}, "kv_cache": _pc()},
    "+256 GB host/GPU, least-requests": {"cluster": {"instances": 4, "router": LR}, "kv_cache": _pc(256)},
    "+256 GB host/GPU, prefix-affinity": {"cluster": {"instances": 4, "router": AFFINITY}, "kv_cache": _pc(256)},
    "+1 TB host/GPU, prefix-affinity": {"cluster": {"instances": 4, "router": AFFINITY}, "kv_cache": _pc(1024)},
}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _scenario(exp: str, name: str, x: float) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": f"{exp}-{name}",
        "seed": 0,
        "model": MODEL,
        "hardware": H100,
        "scheduler": {"kind": "fcfs"},
        "cost_model": {"kind": "roofline"},
    }
    if exp == "disagg":
        base["workload"] = {
            "num_requests": 1500,
            "arrival": {"kind": "poisson", "rate": x},
            "lengths": {"kind": "trace", "path": "sharegpt", "format": "vidur"},
        }
        base["slo"] = DISAGG_SLO
        return _merge(base, DISAGG[name])
    if exp == "cost-ref":  # uncontended: one A100, arrivals 20x slower than recorded
        base["workload"] = {
            "num_requests": 400,
            "arrival": {"kind": "trace", "path": "azure-conv", "format": "azure", "time_scale": x},
        }
        return _merge(base, {"hardware": A100, "cluster": {"instances": 1}})
    if exp == "cost":
        base["workload"] = {
            "num_requests": 3000,
            "arrival": {"kind": "trace", "path": "azure-conv", "format": "azure", "time_scale": x},
        }
        base["slo"] = COST_SLO
        return _merge(base, COST[name])
    if exp == "llumnix":
        sc = _merge(_merge(base, LLUMNIX_BASE), LLUMNIX[name])
        sc["workload"]["arrival"]["rate"] = x
        return sc
    if exp == "prefix":
        sc = _merge(_merge(base, PREFIX_BASE), PREFIX[name])
        sc["workload"]["arrival"]["time_scale"] = x
        return sc
    raise ValueError(exp)


def run_point(job: tuple[str, str, float]) -> dict[str, Any]:
    """One simulation; the numbers the page needs."""
    import sim

    exp, name, x = job
    t0 = time.perf_counter()
    res = sim.run(_scenario(exp, name, x))
    s, df = res.summary, res.requests
    m = s["metrics"]
    row: dict[str, Any] = {
        "exp": exp,
        "config": name,
        "x": x,
        "wall_s": time.perf_counter() - t0,
        "rate": s["counts"]["arrived"] / max(df["arrival_s"].max() - df["arrival_s"].min(), 1e-9),
        "completed": s["counts"]["completed"],
        "preemptions": s["counts"]["preemptions"],
        "slo_attainment": s["throughput"]["slo_attainment"],
        "goodput_rps": s["throughput"]["goodput_rps"],
        "tokens_per_s": s["throughput"]["output_tokens_per_s"],
        "cost": {k: v for k, v in s["cost"].items() if k != "pools"},
    }
    for key in ("ttft_s", "tpot_s", "itl_s", "e2el_s", "queue_delay_s"):
        row[key] = {p: m[key][p] for p in ("mean", "p50", "p90", "p99")}
    for feature in ("disaggregation", "migration", "prefix_cache"):
        if feature in s:
            row[feature] = s[feature]
    return row


def _jobs(only: set[str]) -> list[tuple[str, str, float]]:
    jobs: list[tuple[str, str, float]] = []
    if "disagg" in only:
        jobs += [("disagg", n, r) for n in DISAGG for r in DISAGG_RATES]
    if "cost" in only:
        jobs += [("cost", n, x) for n in COST for x in COST_SCALES] + [("cost-ref", "uncontended A100", 20.0)]
    if "llumnix" in only:
        jobs += [("llumnix", n, r) for n in LLUMNIX for r in LLUMNIX_RATES]
    if "prefix" in only:
        jobs += [("prefix", n, 1.0) for n in PREFIX]
    return jobs


# -- analysis -------------------------------------------------------------------------------------------------
def goodput_at(rows: list[dict[str, Any]], target: float = 0.9) -> float:
    """Highest offered rate with SLO attainment ≥ target, linearly interpolated between grid points
    (DistServe's goodput); 0 if even the lowest rate misses, the top rate (a lower bound) if none does."""
    pts = sorted((r["rate"], r["slo_attainment"]) for r in rows)
    if not pts or pts[0][1] < target:
        return 0.0
    for (r0, a0), (r1, a1) in itertools.pairwise(pts):
        if a1 < target:
            return r0 + (r1 - r0) * (a0 - target) / (a0 - a1)
    return pts[-1][0]


def _ms(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1000:.0f}"


def _by(rows: list[dict[str, Any]], exp: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["exp"] == exp:
            out.setdefault(r["config"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["rate"])
    return out


def table_disagg(rows: list[dict[str, Any]]) -> str:
    by = _by(rows, "disagg")
    if not by:
        return "_not run_"
    lines = [
        "| config | rate (req/s) | TTFT p50 / p90 / p99 (ms) | TBT p50 / p99 (ms) | TPOT p90 (ms) | SLO att. |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rs in by.items():
        for r in rs:
            t, i = r["ttft_s"], r["itl_s"]
            lines.append(
                f"| {name} | {r['x']:.0f} | {_ms(t['p50'])} / {_ms(t['p90'])} / {_ms(t['p99'])} | "
                f"{_ms(i['p50'])} / {_ms(i['p99'])} | {_ms(r['tpot_s']['p90'])} | {r['slo_attainment']:.0%} |"
            )
    lines += ["", "| config | GPUs | goodput at 90% SLO attainment (req/s) | per GPU |", "|---|---:|---:|---:|"]
    for name, rs in by.items():
        g, gpus = goodput_at(rs), rs[0]["cost"]["gpus"]
        shown = f"{g:.1f} | {g / gpus:.2f}" if g else f"< {rs[0]['rate']:.0f} | —"
        lines.append(f"| {name} | {gpus} | {shown} |")
    return "\n".join(lines)


def splitwise_ok(row: dict[str, Any], ref: dict[str, Any]) -> bool:
    """Every percentile within its Splitwise slowdown factor of the uncontended reference."""
    return all(row[m][p] <= f * ref[m][p] for (m, p), f in SPLITWISE_SLO.items())


def splitwise_rate(rs: list[dict[str, Any]], ref: dict[str, Any]) -> float:
    """Highest offered rate of the sweep up to which every run meets every Splitwise SLO (0 if the lightest
    misses)."""
    best = 0.0
    for r in sorted(rs, key=lambda r: r["rate"]):
        if not splitwise_ok(r, ref):
            break
        best = r["rate"]
    return best


def table_cost(rows: list[dict[str, Any]]) -> str:
    by = _by(rows, "cost")
    refs = [r for r in rows if r["exp"] == "cost-ref"]
    if not by or not refs:
        return "_not run_"
    ref = refs[0]
    lines = [
        f"Uncontended reference (1 x A100, 400 requests at 1/20 of the recorded rate): TTFT p50 / p90 / p99 "
        f"{_ms(ref['ttft_s']['p50'])} / {_ms(ref['ttft_s']['p90'])} / {_ms(ref['ttft_s']['p99'])} ms, TBT "
        f"{_ms(ref['itl_s']['p50'])} / {_ms(ref['itl_s']['p90'])} / {_ms(ref['itl_s']['p99'])} ms.",
        "",
        "| config | GPUs | $/h | Splitwise-SLO throughput (req/s) | per $/h | goodput at 90% (req/s) | per $/h | "
        "TTFT p90 (ms) | TBT p50 / p99 (ms) | KV copy exposed mean / p99 (ms) | $/M tokens | avg kW |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rs in by.items():
        g, sw = goodput_at(rs), splitwise_rate(rs, ref)
        c = rs[0]["cost"]
        ok = [r for r in rs if r["rate"] <= max(sw, rs[0]["rate"])]
        at = ok[-1]  # the busiest point still meeting the Splitwise SLOs (or the lightest)
        d = at.get("disaggregation")
        copy_ms = f"{_ms(d['kv_transfer_s']['mean'])} / {_ms(d['kv_transfer_s']['p99'])}" if d else "—"
        per_h = c["dollars_per_hour"]
        lines.append(
            f"| {name} | {c['gpus']} | {per_h:.2f} | {sw:.1f} | {sw / per_h:.2f} | {g:.1f} | {g / per_h:.2f} | "
            f"{_ms(at['ttft_s']['p90'])} | {_ms(at['itl_s']['p50'])} / {_ms(at['itl_s']['p99'])} | {copy_ms} | "
            f"{at['cost']['dollars_per_million_output_tokens']:.3f} | {at['cost']['avg_power_w'] / 1000:.2f} |"
        )
    lines.append("")
    lines.append(
        "Latency, copy, $/M-token and power columns are at the busiest rate that met the Splitwise SLOs "
        "(or the lightest rate when none did)."
    )
    return "\n".join(lines)


def table_llumnix(rows: list[dict[str, Any]]) -> str:
    by = _by(rows, "llumnix")
    if not by:
        return "_not run_"
    lines = [
        "| config | rate (req/s) | TTFT p50 / p99 (ms) | E2E p99 (s) | TPOT p99 (ms) | preemptions | "
        "migrations (aborted) | downtime mean (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rs in by.items():
        for r in rs:
            m = r.get("migration")
            mig = f"{m['completed']} ({sum(m['aborted'].values())})" if m else "—"
            down = _ms(m["downtime_s"]["mean"]) if m else "—"
            ttft = f"{_ms(r['ttft_s']['p50'])} / {_ms(r['ttft_s']['p99'])}"
            lines.append(
                f"| {name} | {r['x']:.0f} | {ttft} | {r['e2el_s']['p99']:.1f} | {_ms(r['tpot_s']['p99'])} | "
                f"{r['preemptions']} | {mig} | {down} |"
            )
    return "\n".join(lines)


def trace_hit_bound(n: int) -> float:
    """Share of prompt tokens an infinite, perfectly routed cache could serve on the first n requests of the
    Mooncake trace (leading block ids seen before; at least one token per prompt is computed)."""
    from sim.workload.traces import load_trace, resolve_trace_path

    tr = load_trace(resolve_trace_path("mooncake-conv"), "mooncake")
    seen: set[int] = set()
    hit = total = 0
    for ids, p in zip(tr.hash_ids[:n], tr.prompt_tokens[:n].tolist(), strict=True):  # type: ignore[index]  # mooncake traces carry hash_ids
        k = 0
        for h in ids.tolist():
            if h not in seen:
                break
            k += 1
        hit += min(k * 512, p - 1)
        total += p
        seen.update(ids.tolist())
    return hit / total


def table_prefix(rows: list[dict[str, Any]]) -> str:
    by = _by(rows, "prefix")
    if not by:
        return "_not run_"
    lines = [
        "| config | hit rate | of which host tier | TTFT mean / p50 / p99 (ms) | queue p50 (ms) | E2E mean (s) | "
        "tok/s | $/M tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (r,) in by.items():
        p = r.get("prefix_cache")
        hit = f"{p['hit_rate']:.1%}" if p else "—"
        host = f"{p['host_hit_tokens'] / max(p['prompt_tokens_admitted'], 1):.1%}" if p else "—"
        t = r["ttft_s"]
        lines.append(
            f"| {name} | {hit} | {host} | {_ms(t['mean'])} / {_ms(t['p50'])} / {_ms(t['p99'])} | "
            f"{_ms(r['queue_delay_s']['p50'])} | {r['e2el_s']['mean']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{r['cost']['dollars_per_million_output_tokens']:.3f} |"
        )
    n = PREFIX_BASE["workload"]["num_requests"]
    lines += [
        "",
        f"Upper bound from the trace itself (an infinite cache that every request finds): "
        f"{trace_hit_bound(n):.1%} of the prompt tokens of these {n} requests.",
    ]
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------------------------------------
def plots(rows: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (OUT / "plots").mkdir(exist_ok=True)
    written = []
    by = _by(rows, "disagg")
    if by:
        fig, ax = plt.subplots(1, 3, figsize=(15, 4))
        for name, rs in by.items():
            x = [r["rate"] for r in rs]
            ax[0].plot(x, [r["ttft_s"]["p90"] for r in rs], "o-", label=name)
            ax[1].plot(x, [r["itl_s"]["p99"] for r in rs], "o-", label=name)
            ax[2].plot(x, [r["slo_attainment"] for r in rs], "o-", label=name)
        ax[0].set(yscale="log", xlabel="offered load (req/s)", ylabel="TTFT p90 (s)", title="time to first token")
        ax[1].set(
            yscale="log",
            xlabel="offered load (req/s)",
            ylabel="inter-token latency p99 (s)",
            title="time between tokens (tail)",
        )
        ax[2].axhline(0.9, color="grey", ls="--")
        ax[2].set(xlabel="offered load (req/s)", ylabel="SLO attainment", title="TTFT ≤ 250 ms and TPOT ≤ 25 ms")
        ax[0].legend(fontsize=8)
        fig.suptitle("4 x H100, Llama-3.1-8B, ShareGPT lengths, Poisson: colocated vs disaggregated")
        fig.tight_layout()
        fig.savefig(OUT / "plots" / "cluster_disagg.png", dpi=110)
        plt.close(fig)
        written.append("cluster_disagg.png")
    by = _by(rows, "cost")
    refs = [r for r in rows if r["exp"] == "cost-ref"]
    if by and refs:
        fig, ax = plt.subplots(1, 3, figsize=(16, 4))
        for name, rs in by.items():
            ax[0].plot([r["rate"] for r in rs], [r["itl_s"]["p99"] for r in rs], "o-", label=name)
            ax[1].plot([r["rate"] for r in rs], [r["ttft_s"]["p99"] for r in rs], "o-", label=name)
        ax[0].axhline(SPLITWISE_SLO[("itl_s", "p99")] * refs[0]["itl_s"]["p99"], color="grey", ls="--")
        ax[1].axhline(SPLITWISE_SLO[("ttft_s", "p99")] * refs[0]["ttft_s"]["p99"], color="grey", ls="--")
        ax[0].set(yscale="log", xlabel="offered load (req/s)", ylabel="TBT p99 (s)", title="tail time between tokens")
        ax[1].set(yscale="log", xlabel="offered load (req/s)", ylabel="TTFT p99 (s)", title="tail time to first token")
        ax[0].legend(fontsize=7)
        names = list(by)
        sw = [splitwise_rate(by[n], refs[0]) / by[n][0]["cost"]["dollars_per_hour"] for n in names]
        gp = [goodput_at(by[n]) / by[n][0]["cost"]["dollars_per_hour"] for n in names]
        y = range(len(names))
        ax[2].barh([i + 0.2 for i in y], sw, height=0.4, label="Splitwise SLOs (percentile slowdowns)")
        ax[2].barh([i - 0.2 for i in y], gp, height=0.4, label="DistServe 90% attainment (TTFT, TPOT)")
        ax[2].set_yticks(list(y), names, fontsize=8)
        ax[2].set(xlabel="req/s per $/hour", title="throughput at SLO per cost")
        ax[2].legend(fontsize=7)
        fig.suptitle("Azure 2023 conversation trace sped up, Llama-3.1-8B")
        fig.tight_layout()
        fig.savefig(OUT / "plots" / "cluster_cost.png", dpi=110)
        plt.close(fig)
        written.append("cluster_cost.png")
    by = _by(rows, "llumnix")
    if by:
        fig, ax = plt.subplots(1, 3, figsize=(15, 4))
        for name, rs in by.items():
            x = [r["x"] for r in rs]
            ax[0].plot(x, [r["ttft_s"]["p99"] for r in rs], "o-", label=name)
            ax[1].plot(x, [r["e2el_s"]["p99"] for r in rs], "o-", label=name)
            ax[2].plot(x, [r["preemptions"] for r in rs], "o-", label=name)
        ax[0].set(yscale="log", xlabel="offered load (req/s)", ylabel="TTFT p99 (s)")
        ax[1].set(xlabel="offered load (req/s)", ylabel="E2E p99 (s)")
        ax[2].set(xlabel="offered load (req/s)", ylabel="preemptions")
        ax[0].legend(fontsize=8)
        fig.suptitle("4 x H100, memory-tight, gamma arrivals (CV 3), long-tailed lengths")
        fig.tight_layout()
        fig.savefig(OUT / "plots" / "cluster_llumnix.png", dpi=110)
        plt.close(fig)
        written.append("cluster_llumnix.png")
    by = _by(rows, "prefix")
    if by:
        fig, ax = plt.subplots(1, 2, figsize=(12, 4))
        names = list(by)
        hits = [by[n][0].get("prefix_cache", {}).get("hit_rate", 0.0) for n in names]
        ax[0].barh(names, hits)
        ax[0].set(xlabel="prompt tokens served from the cache", title="hit rate")
        ax[1].barh(names, [by[n][0]["ttft_s"]["mean"] for n in names], label="mean")
        ax[1].barh(names, [by[n][0]["ttft_s"]["p50"] for n in names], label="p50", alpha=0.7)
        ax[1].set(xlabel="TTFT (s)", title="time to first token")
        ax[1].legend()
        ax[1].set_yticklabels([])
        fig.suptitle("Mooncake conversation trace (first 3000 requests), 4 x H100")
        fig.tight_layout()
        fig.savefig(OUT / "plots" / "cluster_prefix.png", dpi=110)
        plt.close(fig)
        written.append("cluster_prefix.png")
    return written


# -- the page -------------------------------------------------------------------------------------------------
def write_page(rows: list[dict[str, Any]]) -> None:
    blocks = {
        "disagg": table_disagg(rows),
        "cost": table_cost(rows),
        "llumnix": table_llumnix(rows),
        "prefix": table_prefix(rows),
    }
    text = (
        PAGE.read_text()
        if PAGE.exists()
        else "# Cluster shapes\n\n" + "".join(f"## {k}\n\n<!-- gen:{k} -->\n<!-- /gen:{k} -->\n\n" for k in blocks)
    )
    for k, body in blocks.items():
        text = re.sub(
            rf"<!-- gen:{k} -->.*?<!-- /gen:{k} -->",
            lambda _m, k=k, b=body: f"<!-- gen:{k} -->\n{b}\n<!-- /gen:{k} -->",
            text,
            flags=re.S,
        )
    PAGE.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="disagg,cost,llumnix,prefix")
    a = ap.parse_args()
    only = set(a.only.split(","))
    jobs = _jobs(only)
    t0 = time.perf_counter()
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as ex:
            new = list(ex.map(run_point, jobs))
    else:
        new = [run_point(j) for j in jobs]
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    rows = [r for r in old if r["exp"] not in only] + new
    RESULTS.write_text(json.dumps({"rows": rows}, indent=1, default=float) + "\n")
    plots(rows)
    write_page(rows)
    print(f"{len(new)} runs in {time.perf_counter() - t0:.0f} s; wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

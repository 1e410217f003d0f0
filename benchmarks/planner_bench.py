"""Planner benchmark: time and simulations of the target plan, and the planner against an exhaustive grid.

    python benchmarks/planner_bench.py [--workers 2] [--out runs/planner-bench] [--only target|grid]

1. target: `servesim plan` for Llama-3.1-70B on the Azure conversation trace over H100-SXM, A100-80G and
   L40S, tp 2/4/8, colocated + disaggregated, the default scheduler settings; fresh cache.
2. grid: the same traffic on a smaller space (tp 4/8, fcfs + sarathi:512, at most 24 GPUs) solved by
   the planner and by simulating every (configuration, instance count); same answer expected.

Writes `benchmarks/planner_results.json`; PLANNER.md quotes it. Wall times depend on the machine and on
what else runs on it: the numbers in PLANNER.md come from a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from sim.planner import PlanRequest, PlanResult, plan
from sim.planner_grid import exhaustive
from sim.planner_slo import parse_slo
from sim.planner_space import parse_schedulers
from sim.planner_traffic import make_traffic
from sim.sweep_exec import make_backend

HERE = Path(__file__).resolve().parent


def _summary(res: PlanResult) -> dict[str, Any]:
    b = res.best
    return {
        "answer": None if b is None else f"{b.config.label} x {b.size[0]}",
        "cost_per_hour": None if b is None else round(b.cost_per_hour, 2),
        "confirmed": bool(b is not None and res.confirmations and all(c.feasible for c in res.confirmations[-3:])),
        "candidate_runs": len(res.evaluated),
        "confirming_runs": len(res.confirmations),
        "simulations": res.counts["simulated"],
        "cache_hits": res.counts["cached"],
        "pruned": {k: sum(1 for v in res.pruned.values() if v[0] == k) for k in {v[0] for v in res.pruned.values()}},
        "sizes_skipped_roofline": res.counts["sizes skipped: roofline"],
        "sizes_skipped_queueing": res.counts["sizes skipped: queueing estimate"],
        "wall_s": round(res.wall_s, 1),
        "ranked": [f"{e.config.label} x {e.size[0]} ${e.cost_per_hour:.2f}/h" for e in res.ranked],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("runs/planner-bench"))
    ap.add_argument("--only", choices=["target", "grid"], default=None)
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)  # measure from a cold cache
    traffic = make_traffic("azure-conv", None, None)
    slo = parse_slo("ttft_p99=2,tpot_p99=0.1", 0.9)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "workers": a.workers,
        "note": "shared machine: other jobs ran concurrently, wall times are noisy",
    }
    backend = make_backend(a.workers)
    if a.only in (None, "target"):
        req = PlanRequest("llama-3.1-70b", traffic, slo, tps=[2, 4, 8])
        t0 = time.perf_counter()
        res = plan(req, a.out / "target", backend)
        results["target"] = {**_summary(res), "command_wall_s": round(time.perf_counter() - t0, 1)}
        (a.out / "target").mkdir(parents=True, exist_ok=True)
        (a.out / "target" / "search_log.txt").write_text("\n".join(res.log) + "\n")
        print(json.dumps(results["target"], indent=1))
    if a.only in (None, "grid"):
        small = PlanRequest(
            "llama-3.1-70b",
            traffic,
            slo,
            tps=[4, 8],
            shapes=["colocated"],
            schedulers=parse_schedulers("fcfs,sarathi:512", [256]),
            budget=24,
            top=3,
        )
        p = plan(small, a.out / "grid-plan", backend)
        g = exhaustive(small, a.out / "grid-all", backend)
        results["grid"] = {
            "space": "h100-sxm/a100-80g/l40s x tp 4,8 x fcfs,sarathi:512 x 1..24 GPUs, colocated",
            "planner": _summary(p),
            "exhaustive": {**_summary(g), "grid_points": len(g.evaluated)},
            "same_answer": (
                p.best is not None
                and g.best is not None
                and (p.best.config, p.best.size) == (g.best.config, g.best.size)
            ),
            "same_ranking": [(e.config, e.size) for e in p.ranked] == [(e.config, e.size) for e in g.ranked],
        }
        print(json.dumps(results["grid"], indent=1))
    backend.close()
    path = HERE / "planner_results.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

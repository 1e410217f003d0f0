"""Planner benchmark: time and simulations of the target plan, and the planner against exhaustive grids.

    python benchmarks/planner_bench.py [--workers 2] [--out runs/planner-bench] [--no-grid] [--results PATH]
                                       [--only target|grid|shapes|notebook|target-colocated]
    python benchmarks/planner_bench.py --readme [--baseline TREE] [--repeat N]

1. target: `servesim plan` for Llama-3.1-70B on the Azure conversation trace over H100-SXM, A100-80G and
   L40S, tp 2/4/8, colocated + disaggregated, the default scheduler settings; fresh cache.
2. grid: the same traffic on a smaller space (tp 4/8, fcfs + sarathi:512, at most 24 GPUs) solved by
   the planner and by simulating every (configuration, instance count); same answer expected.
3. shapes: as 2. over both shapes (every prefill:decode pair) at most 16 GPUs, against the exhaustive grid.
4. notebook: the setting of notebooks/capacity.ipynb where the old planner's queueing-estimate pruning
   skipped feasible, cheaper sizes (Llama-3.1-8B, the Azure conversation trace at 20 req/s, first 3000
   requests, tp 1, three scheduler settings, at most 6 GPUs), planner against the exhaustive grid.
5. target-colocated: 1. without the disaggregated shape (the space older planners could search).
6. --readme: the README's planner command itself, as a user runs it (a fresh process, default workers, cold
   cache): wall time, CPU time of the process and its workers, the load average around it, and the answer
   and top-3 it prints. With `--baseline TREE` (a checkout or `git archive` of an older commit) the old and
   the new tree run in turn, `--repeat` times each, so both see the same load; written under
   `readme` in the results.

Writes `benchmarks/results/planner_results.json` (or `--results`); PLANNER.md quotes it. Only `plan`,
`exhaustive` and `PlanRequest` are used, so the same script can time an older planner from a snapshot of
the tree (`PYTHONPATH=snapshot python benchmarks/planner_bench.py --no-grid --results ...`). Wall times
depend on the machine and on what else runs on it: the numbers in PLANNER.md come from a shared 2-core
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# benchmarks/queueing.py would shadow the `queueing` package the planner imports: take benchmarks/ off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from sim.tools.planner.evaluate import PlanResult  # noqa: E402
from sim.tools.planner.grid import exhaustive  # noqa: E402
from sim.tools.planner.request import PlanRequest  # noqa: E402
from sim.tools.planner.search import plan  # noqa: E402
from sim.tools.planner.slo import parse_slo  # noqa: E402
from sim.tools.planner.space import parse_schedulers  # noqa: E402
from sim.tools.planner.traffic import make_traffic  # noqa: E402
from sim.tools.sweep.execute import make_backend  # noqa: E402

COUNTS = {  # plan.json counters worth keeping (old planners had the two `sizes skipped` ones)
    "sizes ruled out by the demand bound": "sizes_ruled_out_by_bound",
    "sizes settled by monotonicity": "sizes_settled_by_monotonicity",
    "search rounds": "search_rounds",
    "monotonicity contradictions": "monotonicity_contradictions",
    "sizes skipped: roofline": "sizes_skipped_roofline",
    "sizes skipped: queueing estimate": "sizes_skipped_queueing",
}


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
        **{v: res.counts[k] for k, v in COUNTS.items() if k in res.counts},
        "wall_s": round(res.wall_s, 1),
        "ranked": [f"{e.config.label} x {e.size[0]} ${e.cost_per_hour:.2f}/h" for e in res.ranked],
    }


def _versus(p: PlanResult, g: PlanResult | None, space: str) -> dict[str, Any]:
    out: dict[str, Any] = {"space": space, "planner": _summary(p)}
    if g is not None:
        out["exhaustive"] = {**_summary(g), "grid_points": len(g.evaluated)}
        out["same_answer"] = (
            p.best is not None and g.best is not None and (p.best.config, p.best.size) == (g.best.config, g.best.size)
        )
        out["same_ranking"] = [(e.config, e.size) for e in p.ranked] == [(e.config, e.size) for e in g.ranked]
    return out


README_CMD = ["plan", "--model", "llama-3.1-70b", "--traffic", "azure-conv", "--tp", "2,4,8"]


def readme_run(tree: Path, out: Path) -> dict[str, Any]:
    """The README command in a fresh process on `tree`: wall, CPU (process and waited-for workers), load."""
    import resource
    import subprocess

    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load0 = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "sim.tools.cli", *README_CMD, "--out", str(out), "-q"]
    proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [ln for ln in proc.stdout.splitlines() if ln[:1].isdigit()]  # the ranked table (CSV when piped)
    log = (out / "search_log.txt").read_text() if (out / "search_log.txt").exists() else ""
    return {
        "tree": str(tree),
        "rc": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 1),
        "load_1min_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "ranked": [",".join(r.split(",")[:4]) for r in rows],
        "search": next((ln for ln in log.splitlines() if ln.startswith("search:")), ""),
    }


def readme(a: argparse.Namespace) -> None:
    trees = [*a.baseline, HERE.parent]
    runs: list[dict[str, Any]] = []
    for i in range(a.repeat):
        for j, tree in enumerate(trees):
            r = readme_run(tree.resolve(), a.out / f"readme-{i}-{j}")
            r["which"] = "this tree" if tree == HERE.parent else f"baseline {j + 1}"
            print(json.dumps(r), flush=True)
            runs.append(r)
    old = json.loads(a.results.read_text()) if a.results.exists() else {}
    machine = f"{platform.machine()}, {os.cpu_count()} cores (shared), python {platform.python_version()}"
    old["readme"] = {"command": "servesim " + " ".join(README_CMD), "machine": machine, "runs": runs}
    a.results.write_text(json.dumps(old, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("runs/planner-bench"))
    ap.add_argument("--only", choices=["target", "grid", "shapes", "notebook", "target-colocated"], default=None)
    ap.add_argument("--no-grid", action="store_true", help="skip the exhaustive grids (planner only)")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "planner_results.json")
    ap.add_argument("--readme", action="store_true", help="time the README's planner command (see the doc)")
    ap.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="with --readme: an older tree to run alternately (repeatable)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="with --readme: runs of each tree")
    a = ap.parse_args()
    if a.readme:
        readme(a)
        return
    shutil.rmtree(a.out, ignore_errors=True)  # measure from a cold cache
    traffic = make_traffic("azure-conv", None, None)
    slo = parse_slo("ttft_p99=2,tpot_p99=0.1", 0.9)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "workers": a.workers,
        "note": "shared machine: other jobs ran concurrently, wall times are noisy",
    }
    backend = make_backend(a.workers)

    def target(name: str, shapes: list[str]) -> None:
        req = PlanRequest("llama-3.1-70b", traffic, slo, tps=[2, 4, 8], shapes=shapes)
        t0 = time.perf_counter()
        res = plan(req, a.out / name, backend)
        results[name] = {**_summary(res), "command_wall_s": round(time.perf_counter() - t0, 1)}
        (a.out / name).mkdir(parents=True, exist_ok=True)
        (a.out / name / "search_log.txt").write_text("\n".join(res.log) + "\n")
        print(json.dumps(results[name], indent=1))

    def versus(name: str, req: PlanRequest, space: str) -> None:
        p = plan(req, a.out / f"{name}-plan", backend)
        (a.out / f"{name}-plan" / "search_log.txt").write_text("\n".join(p.log) + "\n")
        g = None if a.no_grid else exhaustive(req, a.out / f"{name}-all", backend)
        results[name] = _versus(p, g, space)
        print(json.dumps(results[name], indent=1))

    if a.only in (None, "target"):
        target("target", ["colocated", "disaggregated"])
    small: dict[str, Any] = {"tps": [4, 8], "schedulers": parse_schedulers("fcfs,sarathi:512", [256]), "top": 3}
    if a.only in (None, "grid"):
        req = PlanRequest("llama-3.1-70b", traffic, slo, shapes=["colocated"], budget=24, **small)
        versus("grid", req, "h100-sxm/a100-80g/l40s x tp 4,8 x fcfs,sarathi:512 x 1..24 GPUs, colocated")
    if a.only in (None, "shapes"):
        req = PlanRequest("llama-3.1-70b", traffic, slo, shapes=["colocated", "disaggregated"], budget=16, **small)
        space = "h100-sxm/a100-80g/l40s x tp 4,8 x fcfs,sarathi:512 x colocated 1..16 GPUs + every P:D pair <= 16 GPUs"
        versus("shapes", req, space)
    if a.only in (None, "notebook"):
        nb = PlanRequest(
            "llama-3.1-8b",
            make_traffic("azure-conv", 20.0, None, num_requests=3000),
            slo,
            tps=[1],
            shapes=["colocated"],
            schedulers=parse_schedulers("fcfs,sarathi:512,sarathi:2048", [256]),
            budget=6,
            top=3,
        )
        space = "llama-3.1-8b, azure-conv @ 20 req/s (3000 requests), h100-sxm/a100-80g/l40s x tp 1 x "
        versus("notebook", nb, space + "fcfs,sarathi:512,sarathi:2048 x 1..6 instances")
    if a.only in (None, "target-colocated"):
        target("target-colocated", ["colocated"])
    backend.close()
    old = json.loads(a.results.read_text()) if a.results.exists() else {}
    a.results.parent.mkdir(parents=True, exist_ok=True)
    a.results.write_text(json.dumps({**old, **results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

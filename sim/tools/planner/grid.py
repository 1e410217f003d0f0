"""The reference answer for the planner: simulate every configuration at every size within the budget.

No bounds, no estimates, no early stop; used by benchmarks/PLANNER.md and the tests to show the
best-first search returns the same configuration with fewer simulations.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from sim.tools.planner.evaluate import Evaluated, PlanResult, SearchLog, confirm, simulate
from sim.tools.planner.request import PlanRequest
from sim.tools.planner.space import SHAPES, Config, Size, Space
from sim.tools.sweep.execute import Backend, SerialBackend


def sizes(req: PlanRequest, cfg: Config) -> list[Size]:
    """Every size of a configuration within the GPU budget: from the smallest (one instance per pool) through
    the shape's successors (colocated: 1..budget/tp; two pools: every (prefill, decode) pair)."""
    shape = SHAPES[cfg.shape]
    first = shape.start({"total": 1, "prefill": 1, "decode": 1})
    out: list[Size] = []
    todo, seen = [first], {first}
    while todo:
        size = todo.pop()
        if shape.instances(size) * cfg.tp > req.budget:
            continue
        out.append(size)
        for nxt in shape.successors(size):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return sorted(out)


def exhaustive(req: PlanRequest, out_dir: Path, backend: Backend | None = None) -> PlanResult:
    """Simulate every configuration at every size within the budget (no bounds): the reference answer."""
    t0 = time.perf_counter()
    backend = backend or SerialBackend()
    log, counts = SearchLog(), Counter[str]()
    space = Space.build(req.hardware, req.tps, req.shapes, req.schedulers)
    items: list[tuple[Config, Size]] = []
    pruned: dict[Config, tuple[str, str]] = {}
    for cfg in space.configs:
        shape = SHAPES[cfg.shape]
        if shape.unavailable():
            pruned[cfg] = ("unavailable", shape.unavailable() or "")
            continue
        items += [(cfg, size) for size in sizes(req, cfg)]
    evaluated = simulate(req, items, out_dir / "runs", backend, "grid")
    ok = [e for e in evaluated if e.row.get("status") == "ok"]
    counts["simulated"] = sum(1 for e in ok if not e.row.get("cached"))
    counts["failed"] = len(evaluated) - len(ok)
    per_cfg: dict[Config, Evaluated] = {}
    for e in sorted((e for e in evaluated if e.feasible), key=Evaluated.rank_key):
        per_cfg.setdefault(e.config, e)
    ranked = sorted(per_cfg.values(), key=Evaluated.rank_key)
    best, confirmations = None, []
    for cand in ranked:
        reps = confirm(req, cand, out_dir / "runs", backend)
        confirmations += reps
        if all(r.feasible for r in reps):
            best = cand
            break
    log(f"grid: {len(items)} points, {len(ok)} ran, {counts['failed']} failed (memory)")
    return PlanResult(
        req, {}, pruned, evaluated, ranked[: req.top], best, confirmations, log, counts, time.perf_counter() - t0
    )

"""`servesim plan`: the cheapest cluster that serves a traffic within its SLOs, found by branch and bound.

Every configuration (GPU × tp × shape × scheduler knobs) first goes through the sound bounds of
`sim.tools.planner.bounds` (memory fit, rejections, latency floors, a finite-horizon demand bound on the
instance count); they rule out configurations and instance counts that cannot meet the SLO in the
screening run. What is left is searched along each configuration's instance axis in $/hour order:
the cheapest unresolved (configuration, size) pairs are settled `workers` at a time through the sweep
machinery and its run cache, and the search stops once the `top` cheapest feasible configurations are
known and no unresolved candidate is as cheap. The winner is then confirmed with a full-traffic run and
replications; if that fails, the search goes on past it.

A candidate is settled by simulating it or a *probe*: another size of the same configuration whose
outcome decides it under one assumption, stated here because the answer depends on it —

**Monotonicity in instances**: for one configuration, if n instances miss the SLO in the screening run,
so do fewer (and if n meet it, so do more), colocated or per pool. So an infeasible probe settles
every smaller size and a feasible one every larger size; a run that *fails* (an error, not an SLO miss)
settles only itself. The exhaustive grid (`sim.tools.planner.grid`) makes no such assumption; the tests and
benchmarks/PLANNER.md compare the two, and the search log flags any pair of runs that contradicts it.

The M/G/c estimate (`estimated_start`: the smallest size it thinks meets the SLO) decides which
unresolved candidates go first (`priority`: the estimated cheapest configurations) and where to probe
(`probe_size`: at or just below the estimated size, then just below a feasible probe and bisecting, or — once
`top` feasible configurations set a price threshold — at the largest size under the threshold, which
settles the rest of the configuration in one run when it fails). It orders the work and never excludes
a size: every candidate cheaper than the threshold is settled by a run before the search ends.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from sim.tools.planner.bounds import Bounds
from sim.tools.planner.estimate import estimated_start
from sim.tools.planner.evaluate import Evaluated, PlanResult, SearchLog, prune_space
from sim.tools.planner.frontier import Axis, Frontier, price_threshold, priority, probe_size
from sim.tools.planner.pool import CandidatePool
from sim.tools.planner.request import PlanRequest, scenario_for
from sim.tools.planner.space import SHAPES, Config, Size, Space
from sim.tools.sweep.execute import Backend, SerialBackend
from sim.tools.sweep.spec import replication_seeds


def _axes(
    req: PlanRequest, bounds: dict[Config, Bounds], pruned: dict[Config, tuple[str, str]], log: SearchLog
) -> list[Axis]:
    """One axis per configuration the bounds leave, with its floor and estimated start (budget-pruned ones
    go to `pruned`)."""
    axes = []
    for cfg, b in bounds.items():
        if cfg in pruned:
            continue
        shape = SHAPES[cfg.shape]
        floor = shape.start(b.n_min)
        if shape.instances(floor) * cfg.tp > req.budget:
            pruned[cfg] = (
                "budget",
                f"the demand bound needs >= {b.demand.get('total', 0):.2f} instances × tp{cfg.tp}, "
                f"more than {req.budget} GPUs",
            )
            continue
        ax = Axis(cfg, b, floor)
        if cfg.shape == "colocated":
            ax.est = estimated_start(b, req.traffic, req.slo, floor[0], req.budget // cfg.tp, req.margin)
        axes.append(ax)
        start = f"; estimate starts at {ax.est}" if ax.est is not None else ""
        total = b.demand.get("total", 0)
        log(f"  {cfg.label}: demand bound {total:.2f} instances → from {shape.describe(floor)}{start}")
    return axes


def candidate_runs(req: PlanRequest, axes: list[Axis]) -> int:
    """Every size within the GPU budget at or above each axis's floor: what an exhaustive search would run."""
    total = 0
    for ax in axes:
        cap = req.budget // ax.config.tp
        floor = ax.floor if isinstance(ax.floor, tuple) else (ax.floor,)
        if len(floor) == 1:
            total += max(0, cap - floor[0] + 1)
        else:  # (prefill, decode) pairs within the budget
            p0, d0 = floor[0], floor[1]
            total += sum(max(0, cap - p - d0 + 1) for p in range(p0, cap + 1))
    return total


def _screen(
    req: PlanRequest, log: SearchLog, counts: Counter[str], pool: CandidatePool | None = None
) -> tuple[dict[Config, Bounds], dict[Config, tuple[str, str]], list[Axis]]:
    """The bounds pass over the whole space, logged: bounds, pruned configurations, and the axes left to search."""
    space = Space.build(req.hardware, req.tps, req.shapes, req.schedulers)
    log(
        f"space: {len(req.hardware)} GPU types × tp {req.tps} × {req.shapes} × {len(req.schedulers)} scheduler "
        f"settings = {len(space.configs)} configurations; budget {req.budget} GPUs; SLO {req.slo}"
    )
    log(
        f"traffic: {req.traffic.label}, {req.traffic.rate:.3g} req/s, mean prompt {req.traffic.prompt.mean():.0f} "
        f"/ output {req.traffic.output.mean():.0f} tokens"
    )
    t0 = time.perf_counter()
    bounds, pruned = prune_space(req, space, log, pool)
    log(f"bounds (sound; sizes below the demand bound cannot meet the SLO), {time.perf_counter() - t0:.1f} s:")
    axes = _axes(req, bounds, pruned, log)
    for kind, n in sorted(Counter(k for k, _ in pruned.values()).items()):
        log(f"pruned before simulating — {kind}: {n} configurations")
    for cfg, (kind, why) in pruned.items():
        if kind != "unavailable":
            log(f"  {cfg.label}: {kind}: {why}")
    counts["sizes ruled out by the demand bound"] = sum(
        ax.shape.instances(ax.floor) - 1 for ax in axes if ax.config.shape == "colocated"
    )
    log(f"sizes ruled out by the demand bound: {counts['sizes ruled out by the demand bound']}")
    return bounds, pruned, axes


def _pick(req: PlanRequest, frontier: Frontier, busy: dict[Config, Size]) -> tuple[Axis, Size] | None:
    """The next run: the unresolved candidate within the price threshold that comes first by `priority`, on a
    configuration with no run in flight (its result may settle the candidate), and the size to probe for it."""
    thr = price_threshold(frontier.axes, req.top)
    open_ = frontier.open_within(thr, frontier.counts)
    for item in sorted(open_, key=lambda it: (priority(it[-2], it[-1], thr), it[:4])):
        ax, size = item[-2], item[-1]
        if ax.config not in busy:
            return ax, probe_size(req, ax, size, thr)
    return None


def _search(
    req: PlanRequest, frontier: Frontier, pool: CandidatePool, evaluated: list[Evaluated], log: SearchLog, progress: Any
) -> None:
    """Settle unresolved candidates within the price threshold, keeping every worker busy, until none is left or
    `req.max_simulations` is reached; every result goes to `evaluated` and its axis."""
    busy: dict[Config, Size] = {}
    while True:
        while pool.in_flight < pool.width and len(evaluated) + len(busy) < req.max_simulations:
            nxt = _pick(req, frontier, busy)
            if nxt is None:
                break
            ax, size = nxt
            busy[ax.config] = size
            pool.submit(ax.config, size)
        if not busy:
            return
        for ev in pool.take():
            del busy[ev.config]
            evaluated.append(ev)
            state = "feasible" if ev.feasible else f"infeasible ({ev.why})"
            log(f"sim {len(evaluated):3d}: {ev.label}: ${ev.cost_per_hour:.2f}/h {state}")
            if progress:
                progress(len(evaluated), ev)
            ax = frontier.axis[ev.config]
            ax.record(ev, log, frontier.counts)


def _ranked(axes: list[Axis]) -> list[Evaluated]:
    return sorted((b for b in (ax.best() for ax in axes) if b is not None), key=Evaluated.rank_key)


def confirm(req: PlanRequest, cand: Evaluated, pool: CandidatePool) -> list[Evaluated]:
    """The full-traffic seed-0 run plus replications with spawned seeds, in full — without simulating one run
    twice: when the search screened the whole traffic, its run of `cand` *is* the seed-0 run (the same scenario,
    and a run that meets the SLO never stops early: the watch stops only certain misses); and when that run drew
    no random number (`engine_draws`, `sim.tools.planner.pool.run_candidate`) and another seed builds the same
    requests, that replication is the same run too (a trace replay with deterministic policies)."""
    seeds = [0, *replication_seeds(0, max(req.replications, 1))[1:]]
    out: dict[int, Evaluated] = {}
    same = scenario_for(req, cand.config, cand.size) == scenario_for(req, cand.config, cand.size, full=True)
    if same and cand.row.get("status") == "ok" and not cand.row.get("stopped_early"):
        out[0] = replace(cand, row={**cand.row, "cached": True, "reused": "search run"}, phase="confirm")
        if cand.row.get("engine_draws") is False:
            reqs = same_requests(req, cand, seeds)
            for seed in seeds[1:]:
                if reqs[seed]:
                    row = {**cand.row, "cached": True, "reused": "seed-0 run (no random draw, same requests)"}
                    out[seed] = replace(cand, row=row, phase="confirm", seed=seed)
    for seed in seeds:
        if seed not in out:
            pool.submit(cand.config, cand.size, "confirm", seed)
    while len(out) < len(seeds):
        for ev in pool.take():
            out[ev.seed] = ev
    return [out[s] for s in seeds]


def same_requests(req: PlanRequest, cand: Evaluated, seeds: list[int]) -> dict[int, bool]:
    """Whether each seed's full-traffic scenario builds exactly the requests seed `seeds[0]` builds."""
    from sim.config.scenario import load_scenario
    from sim.workload.generate import build_requests

    def build(seed: int) -> Any:
        return build_requests(load_scenario(scenario_for(req, cand.config, cand.size, full=True, seed=seed)))

    ref = build(seeds[0])
    return {s: _equal(ref, build(s)) for s in seeds[1:]}


def _equal(a: Any, b: Any) -> bool:
    """Field by field: arrays element-wise (with their dtype), lists of arrays likewise, None only with None."""
    import dataclasses

    import numpy as np

    def same(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return x is None and y is None
        if isinstance(x, list):
            return isinstance(y, list) and len(x) == len(y) and all(same(u, v) for u, v in zip(x, y, strict=True))
        x, y = np.asarray(x), np.asarray(y)
        return x.dtype == y.dtype and x.shape == y.shape and bool(np.array_equal(x, y))

    return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))


def plan(req: PlanRequest, out_dir: Path, backend: Backend | None = None, progress: Any = None) -> PlanResult:
    """Branch and bound for the cheapest configurations meeting the SLOs, then confirmation of the winner."""
    t0 = time.perf_counter()
    backend = backend or SerialBackend()
    pool = CandidatePool(req, backend, out_dir / "runs")
    log, counts = SearchLog(), Counter[str]()
    bounds, pruned, axes = _screen(req, log, counts, pool)
    most = min(candidate_runs(req, axes), req.max_simulations)
    up_front = (
        f"searching {len(axes)} configurations: at most {most} candidate runs (branch and bound usually needs far "
        f"fewer; capped by --max-simulations {req.max_simulations}), then {req.replications} confirming runs"
    )
    log(up_front)
    if progress:
        progress(0, up_front)
    frontier = Frontier(req, axes, counts)
    for ax in axes:
        frontier.push(ax, ax.floor)
    evaluated: list[Evaluated] = []
    confirmations: list[Evaluated] = []
    best: Evaluated | None = None
    try:
        while True:
            _search(req, frontier, pool, evaluated, log, progress)
            if len(evaluated) >= req.max_simulations and not counts["stopped"]:
                counts["stopped"] = 1
                log(f"stopped at --max-simulations {req.max_simulations}: the answer may not be the cheapest")
            ranked = _ranked(axes)
            if not ranked:
                break
            cand = ranked[0]
            reps = confirm(req, cand, pool)
            confirmations.extend(reps)
            bad = [r for r in reps if not r.feasible]
            why = sorted({f"seed {r.seed}: {r.row['reused']}" for r in reps if r.row.get("reused")})
            log(
                f"confirm {cand.label}: {len(reps) - len(bad)}/{len(reps)} full-traffic replications meet the SLO"
                + (f" ({len(why)} not simulated again, being the same run — {'; '.join(why)})" if why else "")
                + (f" — {bad[0].why}" if bad else "")
            )
            if not bad:
                best = cand
                break
            frontier.refute(cand)  # the winner failed: search on past it
    finally:
        pool.close()
    ranked = _ranked(axes)[: max(req.top, 1)]
    counts["simulated"] = sum(1 for e in evaluated + confirmations if not e.row.get("cached"))
    counts["cached"] = sum(1 for e in evaluated + confirmations if e.row.get("cached"))
    wall = time.perf_counter() - t0
    log(
        f"search: {len(evaluated)} candidate runs, {len(confirmations)} confirming runs ({counts['simulated']} "
        f"simulated, {counts['cached']} from the cache or reused) in {wall:.1f} s; "
        f"{counts['sizes settled by monotonicity']} sizes settled by monotonicity without a run"
    )
    log(
        f"answer: {best.label} at ${best.cost_per_hour:.2f}/h"
        if best
        else "answer: no configuration meets the SLO within the budget"
    )
    return PlanResult(req, bounds, pruned, evaluated, ranked, best, confirmations, log, counts, wall)

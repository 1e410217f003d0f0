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
unresolved candidates go first (`_priority`: the estimated cheapest configurations) and where to probe
(`_probe`: at or just below the estimated size, then just below a feasible probe and bisecting, or — once
`top` feasible configurations set a price threshold — at the largest size under the threshold, which
settles the rest of the configuration in one run when it fails). It orders the work and never excludes
a size: every candidate cheaper than the threshold is settled by a run before the search ends.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config.scenario import load_scenario
from sim.tools.planner.bounds import Bounds, Screen, analyse, estimated_start
from sim.tools.planner.slo import SLOSpec
from sim.tools.planner.space import SHAPES, Config, Shape, Size, Space, parse_schedulers
from sim.tools.planner.traffic import Traffic
from sim.tools.sweep.execute import Backend, SerialBackend, run_scenarios
from sim.tools.sweep.spec import replication_seeds

DEFAULT_SCHEDULERS = "fcfs,sarathi:512,sarathi:2048"  # vLLM default; Sarathi's strict and relaxed budgets


@dataclass
class PlanRequest:
    """What to plan for and over which space."""

    model: str
    traffic: Traffic
    slo: SLOSpec
    hardware: list[str] = field(default_factory=lambda: ["h100-sxm", "a100-80g", "l40s"])
    tps: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    shapes: list[str] = field(default_factory=lambda: ["colocated", "disaggregated"])
    schedulers: list[dict[str, Any]] = field(default_factory=lambda: parse_schedulers(DEFAULT_SCHEDULERS, [256]))
    budget: int = 64  # most GPUs in one configuration
    top: int = 3  # how many feasible configurations to rank
    replications: int = 3  # confirming runs of the winner (the first is the full-traffic, seed-0 run)
    margin: float = 1.5  # the search starts at the smallest size whose estimate is within margin × the limits
    router: str = "least_requests"
    search_requests: int | None = None  # screen on the first N requests; confirm on the full traffic
    base: dict[str, Any] | None = None  # scenario keys to inherit: cost_model, kv_cache, engine, ...
    max_simulations: int = 400


@dataclass
class Evaluated:
    """One simulated (configuration, size) and how it scored against the SLOs."""

    config: Config
    size: Size
    row: dict[str, Any]
    feasible: bool
    headroom: float
    why: str
    phase: str = "search"  # search | confirm | grid

    @property
    def instances(self) -> int:
        return SHAPES[self.config.shape].instances(self.size)

    @property
    def gpus(self) -> int:
        return self.instances * self.config.tp

    @property
    def cost_per_hour(self) -> float:
        return self.instances * self.config.price_per_instance

    @property
    def label(self) -> str:
        return f"{self.config.label} × {SHAPES[self.config.shape].describe(self.size)}"

    def rank_key(self) -> tuple[float, int, float, str]:
        """Cheapest first; then fewer GPUs, more headroom, and the label for a stable order."""
        return (round(self.cost_per_hour, 6), self.gpus, -self.headroom, self.label)


@dataclass
class PlanResult:
    request: PlanRequest
    bounds: dict[Config, Bounds]
    pruned: dict[Config, tuple[str, str]]  # config -> (kind, why)
    evaluated: list[Evaluated]
    ranked: list[Evaluated]
    best: Evaluated | None
    confirmations: list[Evaluated]
    log: list[str]
    counts: Counter[str]
    wall_s: float

    @property
    def simulations(self) -> int:
        """Simulations actually run (cache hits excluded)."""
        return sum(1 for e in self.evaluated if not e.row.get("cached"))

    def best_scenario(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        return scenario_for(self.request, self.best.config, self.best.size, full=True)


def base_scenario(req: PlanRequest, traffic: Traffic) -> dict[str, Any]:
    """The scenario every candidate starts from: inherited keys, then model, traffic, SLO and router."""
    data = copy.deepcopy(req.base or {})
    for k in ("hardware", "scheduler"):
        data.pop(k, None)
    data.update({"name": data.get("name", "plan"), "model": req.model, "workload": copy.deepcopy(traffic.workload)})
    data["slo"] = req.slo.scenario_slo()
    data["seed"] = int(data.get("seed", 0))
    cluster = data.setdefault("cluster", {})
    cluster.setdefault("router", {"kind": req.router})
    return data


def scenario_for(req: PlanRequest, cfg: Config, size: Size, full: bool = False, seed: int = 0) -> dict[str, Any]:
    traffic = req.traffic if full else req.traffic.truncated(req.search_requests)
    sc = SHAPES[cfg.shape].scenario(cfg, size, base_scenario(req, traffic))
    sc["seed"] = seed
    sc["name"] = f"plan-{cfg.gpu}-tp{cfg.tp}-{cfg.shape}-{cfg.scheduler_dict['kind']}-{'x'.join(map(str, size))}"
    return sc


def simulate(
    req: PlanRequest,
    items: list[tuple[Config, Size]],
    runs_dir: Path,
    backend: Backend,
    phase: str,
    full: bool = False,
    seed: int = 0,
) -> list[Evaluated]:
    scs = [load_scenario(scenario_for(req, c, s, full, seed)) for c, s in items]
    rows = run_scenarios(scs, runs_dir, backend, save_requests=False)
    out = []
    for (c, s), row in zip(items, rows, strict=True):
        ok, head, why = req.slo.check(row)
        out.append(Evaluated(c, s, row, ok, head, why, phase))
    return out


class SearchLog(list[str]):
    """Lines of the search log; calling it appends one."""

    def __call__(self, msg: str) -> None:
        self.append(msg)


def prune_space(
    req: PlanRequest, space: Space, log: SearchLog
) -> tuple[dict[Config, Bounds], dict[Config, tuple[str, str]]]:
    """Bounds of every configuration, and the ones ruled out before any simulation (kind, why).

    The bounds are computed on the screening run's exact requests (seed 0, `search_requests`)."""
    base = base_scenario(req, req.traffic.truncated(req.search_requests))
    base["seed"] = 0  # as `scenario_for` sets it
    load_scenario({**base, "hardware": space.configs[0].gpu})  # a bad --base or model fails here, once
    screen = Screen.of(base)
    bounds, pruned = {}, {}
    for shape in dict.fromkeys(c.shape for c in space.configs):
        why = SHAPES[shape].unavailable()
        if why:
            log(f"shape {shape}: unavailable — {why}")
    for cfg in space.configs:
        why = SHAPES[cfg.shape].unavailable()
        if why:
            pruned[cfg] = ("unavailable", why)
            continue
        b = analyse(cfg, base, req.traffic, req.slo, screen)
        bounds[cfg] = b
        if b.prune_kind:
            pruned[cfg] = (b.prune_kind, b.prune_why)
    return bounds, pruned


EPS = 1e-6  # $/hour: candidates within this of the threshold are resolved too (ties break on headroom)


def _leq(a: Size, b: Size) -> bool:
    return len(a) == len(b) and all(x <= y for x, y in zip(a, b, strict=True))


@dataclass(eq=False)
class Axis:
    """What the search knows about one configuration's sizes (see the module doc for the assumption)."""

    config: Config
    bounds: Bounds
    floor: Size  # smallest size the bounds allow
    est: int | None = None  # where the estimate says to start (colocated)
    feasible: dict[Size, Evaluated] = field(default_factory=dict)
    infeasible: set[Size] = field(default_factory=set)  # SLO misses, rejected confirmations: settle smaller
    failed: set[Size] = field(default_factory=set)  # runs that errored: settle only themselves
    downs: int = 0  # feasible results so far (the first probe below one trusts the estimate, later bisect)

    @property
    def shape(self) -> Shape:
        return SHAPES[self.config.shape]

    def cost(self, size: Size) -> float:
        return self.shape.instances(size) * self.config.price_per_instance

    def below_bounds(self, size: Size) -> bool:
        return not _leq(self.floor, size) or self.shape.instances(size) < self.bounds.n_min["total"]

    def settled_infeasible(self, size: Size) -> bool:
        return self.below_bounds(size) or size in self.failed or any(_leq(size, x) for x in self.infeasible)

    def settled_feasible(self, size: Size) -> bool:
        return any(_leq(x, size) for x in self.feasible)

    def best(self) -> Evaluated | None:
        return min(self.feasible.values(), key=Evaluated.rank_key, default=None)

    def record(self, ev: Evaluated, log: SearchLog, counts: Counter[str]) -> None:
        if ev.feasible:
            self.feasible[ev.size] = ev
            self.downs += 1
        elif ev.row.get("status") == "ok":
            self.infeasible.add(ev.size)
        else:
            self.failed.add(ev.size)
        for ok in self.feasible:
            for bad in self.infeasible:
                if _leq(ok, bad) and ok != bad and (ok, bad) not in self._flagged:
                    self._flagged.add((ok, bad))
                    counts["monotonicity contradictions"] += 1
                    log(
                        f"  note: {self.config.label}: {self.shape.describe(ok)} meets the SLO but "
                        f"{self.shape.describe(bad)} does not (more instances hurt here; see the module doc)"
                    )

    def __post_init__(self) -> None:
        self._flagged: set[tuple[Size, Size]] = set()


def _threshold(axes: list[Axis], top: int) -> float:
    """$/hour of the `top`-th cheapest configuration known to be feasible (inf until there are that many)."""
    costs = sorted(round(b.cost_per_hour, 6) for b in (a.best() for a in axes) if b is not None)
    return costs[top - 1] if len(costs) >= top else math.inf


def _priority(ax: Axis, size: Size) -> float:
    """Which unresolved candidates to settle first (all of them are settled before the search ends): the
    configurations the estimate thinks cheapest, so that a price threshold is known early."""
    if ax.est is None or ax.feasible:
        return ax.cost(size)
    return ax.config.price_per_instance * max(size[0], ax.est)


def _probe(req: PlanRequest, ax: Axis, size: Size, threshold: float) -> Size:
    """Which size to simulate to settle the unresolved candidate `size` (itself, or a colocated probe).

    Colocated, with `upper` the largest size within the budget and the price threshold: below a feasible
    size, the next size down, then bisection. Else, while the estimate `e` stands (e >= n): `upper` when e
    is above it (one failing run there settles the configuration); without a threshold yet, e itself (a
    feasible run sets the threshold sooner); with one, e − 1 (the cheaper side: if it fails e comes next,
    and if the configuration is not competitive e is never needed). Once the estimate is refuted: `upper`
    when there is a threshold, else walking up, galloping as the estimate proves further off.
    """
    if ax.config.shape != "colocated":
        return _probe_pools(req, ax, size, threshold)
    n = size[0]
    upper = req.budget // ax.config.tp
    if threshold < math.inf:
        upper = min(upper, math.floor((threshold + EPS) / ax.config.price_per_instance))
    hi = min((s[0] for s in ax.feasible), default=None)
    est = ax.est
    if hi is not None:
        upper = min(upper, hi - 1)
        target = upper if ax.downs <= 1 else (n + upper + 1) // 2
    elif est is None:
        target = n
    elif est >= n:
        target = upper if est > upper else est if threshold == math.inf else est - 1
    elif threshold < math.inf:
        target = upper
    else:
        target = n + max(0, n - 1 - est)
    probe = max(n, min(target, upper))
    while probe > n and (probe,) in ax.failed:
        probe -= 1
    return (probe,)


def _probe_pools(req: PlanRequest, ax: Axis, size: Size, threshold: float) -> Size:
    """For shapes with several pools, once there is a price threshold: `size` with one pool raised as far as
    the budget and the threshold allow (one failing run settles every size it dominates: a whole row or
    column of the grid), pool by pool, skipping extremes already known feasible; else `size` itself."""
    if threshold == math.inf:
        return size
    for i in range(len(size)):
        grown = list(size)
        while True:
            grown[i] += 1
            t = tuple(grown)
            if ax.shape.instances(t) * ax.config.tp > req.budget or round(ax.cost(t), 6) > threshold + EPS:
                grown[i] -= 1
                break
        probe = tuple(grown)
        if probe != size and probe not in ax.failed and not ax.settled_feasible(probe):
            return probe
    return size


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


def plan(req: PlanRequest, out_dir: Path, backend: Backend | None = None, progress: Any = None) -> PlanResult:
    """Branch and bound for the cheapest configurations meeting the SLOs, then confirmation of the winner."""
    t0 = time.perf_counter()
    backend = backend or SerialBackend()
    runs_dir = out_dir / "runs"
    log, counts = SearchLog(), Counter[str]()
    space = Space.build(req.hardware, req.tps, req.shapes, req.schedulers)
    log(
        f"space: {len(req.hardware)} GPU types × tp {req.tps} × {req.shapes} × {len(req.schedulers)} scheduler "
        f"settings = {len(space.configs)} configurations; budget {req.budget} GPUs; SLO {req.slo}"
    )
    log(
        f"traffic: {req.traffic.label}, {req.traffic.rate:.3g} req/s, mean prompt {req.traffic.prompt.mean():.0f} "
        f"/ output {req.traffic.output.mean():.0f} tokens"
    )
    bounds, pruned = prune_space(req, space, log)
    log("bounds (sound; sizes below the demand bound cannot meet the SLO):")
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
    width = max(1, int(getattr(backend, "workers", 1)))
    heap: list[tuple[float, int, str, int, Axis, Size]] = []
    seq = itertools.count()
    seen: set[tuple[Config, Size]] = set()

    def push(ax: Axis, size: Size, again: bool = False) -> None:
        key = (ax.config, size)
        if ax.shape.instances(size) * ax.config.tp > req.budget or (key in seen and not again):
            return
        seen.add(key)
        gpus = ax.shape.instances(size) * ax.config.tp
        heapq.heappush(heap, (round(ax.cost(size), 6), gpus, ax.config.label, next(seq), ax, size))

    for ax in axes:
        push(ax, ax.floor)
    evaluated: list[Evaluated] = []
    confirmations: list[Evaluated] = []
    best: Evaluated | None = None
    while True:
        while len(evaluated) < req.max_simulations:
            thr = _threshold(axes, req.top)
            open_: list[tuple[float, int, str, int, Axis, Size]] = []  # unresolved candidates within the threshold
            while heap and heap[0][0] <= thr + EPS:
                item = heapq.heappop(heap)
                ax, size = item[-2], item[-1]
                if ax.settled_infeasible(size):
                    if not ax.below_bounds(size) and size not in ax.infeasible and size not in ax.failed:
                        counts["sizes settled by monotonicity"] += 1
                    for nxt in ax.shape.successors(size):
                        push(ax, nxt)
                    continue
                if not ax.settled_feasible(size):
                    open_.append(item)
            for item in open_:
                heapq.heappush(heap, item)
            batch: list[tuple[Axis, Size]] = []
            busy: set[Config] = set()
            for item in sorted(open_, key=lambda it: (_priority(it[-2], it[-1]), it[:4])):
                ax, size = item[-2], item[-1]
                if len(batch) < width and ax.config not in busy:
                    busy.add(ax.config)
                    batch.append((ax, _probe(req, ax, size, thr)))
            if not batch:
                break
            counts["search rounds"] += 1
            evs = simulate(req, [(ax.config, s) for ax, s in batch], runs_dir, backend, "search")
            for (ax, _), ev in zip(batch, evs, strict=True):
                evaluated.append(ev)
                state = "feasible" if ev.feasible else f"infeasible ({ev.why})"
                log(f"sim {len(evaluated):3d}: {ev.label}: ${ev.cost_per_hour:.2f}/h {state}")
                if progress:
                    progress(len(evaluated), ev)
                ax.record(ev, log, counts)
        if len(evaluated) >= req.max_simulations and not counts["stopped"]:
            counts["stopped"] = 1
            log(f"stopped at --max-simulations {req.max_simulations}: the answer may not be the cheapest")
        ranked = sorted((b for b in (ax.best() for ax in axes) if b is not None), key=Evaluated.rank_key)
        if not ranked or best is not None:
            break
        cand = ranked[0]
        reps = confirm(req, cand, runs_dir, backend)
        confirmations.extend(reps)
        bad = [r for r in reps if not r.feasible]
        log(
            f"confirm {cand.label}: {len(reps) - len(bad)}/{len(reps)} full-traffic replications meet the SLO"
            + (f" — {bad[0].why}" if bad else "")
        )
        if not bad:
            best = cand
            break
        ax = next(a for a in axes if a.config == cand.config)
        del ax.feasible[cand.size]
        ax.infeasible.add(cand.size)
        for nxt in ax.shape.successors(cand.size):
            push(ax, nxt, again=True)
    ranked = sorted((b for b in (ax.best() for ax in axes) if b is not None), key=Evaluated.rank_key)
    ranked = ranked[: max(req.top, 1)]
    counts["simulated"] = sum(1 for e in evaluated + confirmations if not e.row.get("cached"))
    counts["cached"] = sum(1 for e in evaluated + confirmations if e.row.get("cached"))
    wall = time.perf_counter() - t0
    log(
        f"search: {len(evaluated)} candidate runs in {counts['search rounds']} rounds, {len(confirmations)} "
        f"confirming runs ({counts['simulated']} simulated, {counts['cached']} from the cache) in {wall:.1f} s; "
        f"{counts['sizes settled by monotonicity']} sizes settled by monotonicity without a run"
    )
    log(
        f"answer: {best.label} at ${best.cost_per_hour:.2f}/h"
        if best
        else "answer: no configuration meets the SLO within the budget"
    )
    return PlanResult(req, bounds, pruned, evaluated, ranked, best, confirmations, log, counts, wall)


def confirm(req: PlanRequest, cand: Evaluated, runs_dir: Path, backend: Backend) -> list[Evaluated]:
    """The full-traffic seed-0 run plus replications with spawned seeds."""
    seeds = [0, *replication_seeds(0, max(req.replications, 1))[1:]]
    scs = [load_scenario(scenario_for(req, cand.config, cand.size, full=True, seed=s)) for s in seeds]
    rows = run_scenarios(scs, runs_dir, backend, save_requests=False)
    out = []
    for row in rows:
        ok, head, why = req.slo.check(row)
        out.append(Evaluated(cand.config, cand.size, row, ok, head, why, "confirm"))
    return out

"""`servesim plan`: the cheapest cluster that serves a traffic within its SLOs, found by best-first search.

Every configuration (GPU × tp × shape × scheduler knobs) first goes through the analytic bounds of
`sim.planner_bounds`; survivors enter a priority queue keyed by $/hour at their smallest plausible size.
The planner simulates the cheapest entries (in parallel, through the sweep machinery and its run
cache), grows infeasible ones to the next size, and stops once the `top` cheapest feasible
configurations are known and nothing cheaper is left in the queue. Assuming more instances never hurt,
that is the same answer as simulating the whole grid (benchmarks/PLANNER.md checks it). The winner is
then confirmed with a full-traffic run and replications; if it fails, the search goes on.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.planner_bounds import Bounds, analyse, estimate
from sim.planner_slo import SLOSpec
from sim.planner_space import SHAPES, Config, Size, Space, parse_schedulers
from sim.planner_traffic import Traffic
from sim.scenario import load_scenario
from sim.sweep_exec import Backend, SerialBackend, run_scenarios
from sim.sweep_spec import replication_seeds

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
    margin: float = 1.5  # queueing estimates skip a size only when they miss by more than this factor
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
    """Analytic bounds of every configuration, and the ones ruled out before any simulation (kind, why)."""
    base = base_scenario(req, req.traffic)
    load_scenario({**base, "hardware": space.configs[0].gpu})  # a bad --base or model fails here, once
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
        b = analyse(cfg, base, req.traffic, req.slo)
        bounds[cfg] = b
        if b.prune_kind:
            pruned[cfg] = (b.prune_kind, b.prune_why)
    return bounds, pruned


def _start(req: PlanRequest, cfg: Config, b: Bounds, counts: Counter[str]) -> Size | None:
    """Smallest size passing the roofline bound and the queueing estimate, or None past the budget."""
    shape = SHAPES[cfg.shape]
    size = shape.start(b.n_min)
    counts["sizes skipped: roofline"] += shape.instances(size) - 1
    while shape.instances(size) * cfg.tp <= req.budget:
        if cfg.shape != "colocated":
            return size
        est = estimate(b, req.traffic, req.slo, size[0], req.margin)
        if not est.why:
            return size
        counts["sizes skipped: queueing estimate"] += 1
        size = shape.successors(size)[0]
    return None


def plan(req: PlanRequest, out_dir: Path, backend: Backend | None = None, progress: Any = None) -> PlanResult:
    """Best-first search for the cheapest configurations meeting the SLOs, then confirmation of the winner."""
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
    heap: list[tuple[float, int, str, int, Config, Size]] = []
    seq = itertools.count()
    seen: set[tuple[Config, Size]] = set()

    def push(cfg: Config, size: Size) -> None:
        shape = SHAPES[cfg.shape]
        if shape.instances(size) * cfg.tp > req.budget or (cfg, size) in seen:
            return
        seen.add((cfg, size))
        cost = shape.instances(size) * cfg.price_per_instance
        heapq.heappush(heap, (round(cost, 6), shape.instances(size) * cfg.tp, cfg.label, next(seq), cfg, size))

    for cfg, b in bounds.items():
        if cfg in pruned:
            continue
        size = _start(req, cfg, b, counts)
        if size is None:
            pruned[cfg] = (
                "budget",
                f"needs more than {req.budget} GPUs (roofline minimum {b.n_min['total']} "
                f"instances × tp{cfg.tp}, or the queueing estimate)",
            )
        else:
            push(cfg, size)
    for kind, n in sorted(Counter(k for k, _ in pruned.values()).items()):
        log(f"pruned before simulating — {kind}: {n} configurations")
    for cfg, (kind, why) in pruned.items():
        if kind != "unavailable":
            log(f"  {cfg.label}: {kind}: {why}")
    for k in ("sizes skipped: roofline", "sizes skipped: queueing estimate"):
        log(f"{k}: {counts[k]}")
    width = getattr(backend, "workers", 1)
    evaluated: list[Evaluated] = []
    found: dict[Config, Evaluated] = {}
    confirmations: list[Evaluated] = []
    rejected: set[tuple[Config, Size]] = set()
    best: Evaluated | None = None
    while True:
        while heap and len(evaluated) < req.max_simulations:
            ranked = sorted(found.values(), key=Evaluated.rank_key)
            threshold = ranked[req.top - 1].rank_key()[0] if len(ranked) >= req.top else float("inf")
            batch: list[tuple[Config, Size]] = []
            while heap and len(batch) < width and heap[0][0] <= threshold:
                *_, cfg, size = heapq.heappop(heap)
                if cfg not in found:
                    batch.append((cfg, size))
            if not batch:
                break
            for ev in simulate(req, batch, runs_dir, backend, "search"):
                evaluated.append(ev)
                state = "feasible" if ev.feasible else f"infeasible ({ev.why})"
                log(f"sim {len(evaluated):3d}: {ev.label}: ${ev.cost_per_hour:.2f}/h {state}")
                if progress:
                    progress(len(evaluated), ev)
                if ev.feasible and (ev.config, ev.size) not in rejected:
                    found[ev.config] = ev
                else:
                    for nxt in SHAPES[ev.config.shape].successors(ev.size):
                        push(ev.config, nxt)
        if len(evaluated) >= req.max_simulations:
            log(f"stopped at --max-simulations {req.max_simulations}")
        ranked = sorted(found.values(), key=Evaluated.rank_key)
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
        rejected.add((cand.config, cand.size))
        del found[cand.config]
        for nxt in SHAPES[cand.config.shape].successors(cand.size):
            push(cand.config, nxt)
    ranked = sorted(found.values(), key=Evaluated.rank_key)[: max(req.top, 1)]
    counts["simulated"] = sum(1 for e in evaluated + confirmations if not e.row.get("cached"))
    counts["cached"] = sum(1 for e in evaluated + confirmations if e.row.get("cached"))
    wall = time.perf_counter() - t0
    log(
        f"search: {len(evaluated)} candidate runs, {len(confirmations)} confirming runs "
        f"({counts['simulated']} simulated, {counts['cached']} from the cache) in {wall:.1f} s"
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

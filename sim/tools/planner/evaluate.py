"""Scoring candidates: simulated (configuration, size) pairs against the SLOs, the bounds pass over the space,
confirmation runs, and what a plan returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.config.scenario import load_scenario
from sim.tools.planner.bounds import Bounds, analyse, floor_jobs
from sim.tools.planner.demand import Screen
from sim.tools.planner.floors import warm
from sim.tools.planner.request import PlanRequest, base_scenario, check_base, scenario_for
from sim.tools.planner.space import SHAPES, Config, Size, Space
from sim.tools.sweep.execute import Backend, run_scenarios
from sim.tools.sweep.spec import replication_seeds


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
    seed: int = 0

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
    # the search only needs each run's verdict: a run stops once its miss is certain (`sim.core.verdict`);
    # the exhaustive grid (the reference) and confirmations run in full
    stop = req.slo.stop_spec() if phase == "search" and req.early_stop else None
    rows = run_scenarios(scs, runs_dir, backend, save_requests=False, stop_on_miss=stop)
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
    req: PlanRequest, space: Space, log: SearchLog, pool: Any = None
) -> tuple[dict[Config, Bounds], dict[Config, tuple[str, str]]]:
    """Bounds of every configuration, and the ones ruled out before any simulation (kind, why).

    The bounds are computed on the screening run's exact requests (seed 0, `search_requests`). With a `pool`
    of several workers (`sim.tools.planner.pool.CandidatePool`), the cost-model floor curves — most of this
    pass's time — are computed on them first."""
    base = base_scenario(req, req.traffic.truncated(req.search_requests))
    base["seed"] = 0  # as `scenario_for` sets it
    check_base({**base, "hardware": space.configs[0].gpu})  # a bad --base or model fails here, once
    screen = Screen.of(base)
    bounds, pruned = {}, {}
    for shape in dict.fromkeys(c.shape for c in space.configs):
        why = SHAPES[shape].unavailable()
        if why:
            log(f"shape {shape}: unavailable — {why}")
    if pool is not None and pool.width > 1:
        available = [c for c in space.configs if not SHAPES[c.shape].unavailable()]
        warm(floor_jobs(available, base, screen), pool.run_all, 4 * pool.width)
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


def confirm(req: PlanRequest, cand: Evaluated, runs_dir: Path, backend: Backend) -> list[Evaluated]:
    """The full-traffic seed-0 run plus replications with spawned seeds."""
    seeds = [0, *replication_seeds(0, max(req.replications, 1))[1:]]
    scs = [load_scenario(scenario_for(req, cand.config, cand.size, full=True, seed=s)) for s in seeds]
    rows = run_scenarios(scs, runs_dir, backend, save_requests=False)
    out = []
    for seed, row in zip(seeds, rows, strict=True):
        ok, head, why = req.slo.check(row)
        out.append(Evaluated(cand.config, cand.size, row, ok, head, why, "confirm", seed))
    return out

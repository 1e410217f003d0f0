"""`servesim plan --capacity`: the highest arrival rate each configuration sustains within the SLOs.

Capacity as Sarathi-Serve and Vidur-Search define it: binary search on the request rate (a trace is
time-scaled, a synthetic process re-rated) for the largest rate whose simulation still meets the
SLO. The bracket starts at [0, throughput ceiling]: `sim.tools.planner.bounds` gives a lower bound on busy
seconds per request, so `instances / work` is a rate no configuration sustains in steady state. A short
run can still pass above it (the backlog has no time to build up), so the first probe of each
configuration is the ceiling itself, doubled while it passes: the bracket's upper end is always a rate
seen to fail. All configurations advance in lockstep, one probe each per round, so a round's
simulations run in parallel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config.scenario import load_scenario
from sim.tools.planner.evaluate import SearchLog, prune_space
from sim.tools.planner.request import PlanRequest, base_scenario
from sim.tools.planner.space import SHAPES, Config, Space
from sim.tools.sweep.execute import Backend, SerialBackend, run_scenarios


@dataclass
class CapacityRow:
    config: Config
    instances: int
    lo: float = 0.0  # highest rate seen to meet the SLO
    hi: float = 0.0  # lowest rate seen to miss it (until `verified`: the next rate to try)
    verified: bool = False  # whether `hi` was seen to miss
    probes: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def gpus(self) -> int:
        return self.instances * self.config.tp

    @property
    def cost_per_hour(self) -> float:
        return self.instances * self.config.price_per_instance


@dataclass
class CapacityResult:
    rows: list[CapacityRow]
    pruned: dict[Config, tuple[str, str]]
    log: list[str]
    simulations: int
    wall_s: float


def capacity_search(
    req: PlanRequest,
    out_dir: Path,
    instances: int = 1,
    backend: Backend | None = None,
    rel_tol: float = 0.05,
    max_rounds: int = 12,
) -> CapacityResult:
    """Bisect each configuration's sustainable rate to `rel_tol` (relative bracket width)."""
    t0 = time.perf_counter()
    backend = backend or SerialBackend()
    log = SearchLog()
    space = Space.build(req.hardware, req.tps, req.shapes, req.schedulers)
    bounds, pruned = prune_space(req, space, log)
    rows = []
    for cfg, b in bounds.items():
        if cfg in pruned:
            continue
        if cfg.shape != "colocated":
            pruned[cfg] = ("unavailable", f"capacity search covers colocated shapes only ({cfg.shape})")
            continue
        ceiling = instances / b.work_s if b.work_s > 0 else 1e6
        rows.append(CapacityRow(cfg, instances, 0.0, ceiling))
    sims = 0
    for rnd in range(max_rounds):
        active = [r for r in rows if not r.verified or r.hi - r.lo > rel_tol * r.hi]
        if not active:
            break
        rates = [(r.lo + r.hi) / 2 if r.verified else r.hi for r in active]
        scs = []
        for r, rate in zip(active, rates, strict=True):
            traffic = req.traffic.truncated(req.search_requests).at_rate(rate)
            data = SHAPES[r.config.shape].scenario(r.config, (r.instances,), base_scenario(req, traffic))
            scs.append(load_scenario(data))
        results = run_scenarios(scs, out_dir / "runs", backend, save_requests=False)
        sims += sum(1 for x in results if not x.get("cached"))
        for r, rate, row in zip(active, rates, results, strict=True):
            ok, _, _ = req.slo.check(row)
            r.probes.append((rate, ok))
            if ok:
                r.lo = rate
                if not r.verified:
                    r.hi = 2 * rate
            else:
                r.hi, r.verified = rate, True
        log(f"round {rnd + 1}: {len(active)} probes")
    rows.sort(key=lambda r: -r.lo / max(r.cost_per_hour, 1e-9))
    return CapacityResult(rows, pruned, log, sims, time.perf_counter() - t0)


def capacity_table(res: CapacityResult, req: PlanRequest) -> Any:
    from rich.table import Table

    t = Table(title=f"capacity within {req.slo} (binary search on rate)", title_justify="left")
    for c in ("configuration", "GPUs", "$/hour", "capacity req/s", "req/s per GPU", "$/Mtok at capacity", "probes"):
        t.add_column(c, justify="left" if c == "configuration" else "right")
    tok = req.traffic.tokens_per_request
    for r in res.rows:
        cap = r.lo
        per_mtok = r.cost_per_hour / (cap * tok * 3600 / 1e6) if cap > 0 else float("nan")
        t.add_row(
            f"{r.config.label} × {r.instances}",
            str(r.gpus),
            f"{r.cost_per_hour:.2f}",
            f"{cap:.3g}" if cap > 0 else f"< {r.hi:.3g}",
            f"{cap / r.gpus:.3g}",
            f"{per_mtok:.3f}",
            str(len(r.probes)),
        )
    t.caption = f"{res.simulations} simulations in {res.wall_s:.1f} s; {len(res.pruned)} configurations pruned"
    t.caption_justify = "left"
    return t


def write_capacity(res: CapacityResult, req: PlanRequest, out: Path) -> Path:
    """capacity.parquet (one row per configuration, with every probe) and the search log."""
    import json

    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    recs = [
        {
            "config": r.config.label,
            "gpu": r.config.gpu,
            "tp": r.config.tp,
            "instances": r.instances,
            "gpus": r.gpus,
            "cost_per_hour": r.cost_per_hour,
            "capacity_rps": r.lo,
            "upper_rps": r.hi,
            "probes": json.dumps(r.probes),
        }
        for r in res.rows
    ]
    recs += [{"config": c.label, "gpu": c.gpu, "tp": c.tp, "pruned": f"{k}: {w}"} for c, (k, w) in res.pruned.items()]
    path = out / "capacity.parquet"
    pd.DataFrame.from_records(recs).to_parquet(path, index=False)
    (out / "search_log.txt").write_text("\n".join(res.log) + "\n")
    return path

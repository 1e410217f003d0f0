"""The `servesim plan` command's body: options in, a `PlanRequest`, the search, files out.

Kept out of `sim/tools/cli.py` so the command there stays a thin wrapper, and so notebooks can call
`plan_from_options(...)` with the same defaults as the command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.config.modelarg import model_arg
from sim.config.yamlio import apply_overrides, load_yaml
from sim.errors import ServesimError
from sim.tools.planner.capacity import CapacityResult, capacity_search, capacity_table, write_capacity
from sim.tools.planner.evaluate import PlanResult
from sim.tools.planner.report import ranked_table, write_outputs
from sim.tools.planner.request import PlanRequest, check_base
from sim.tools.planner.search import plan
from sim.tools.planner.slo import parse_slo
from sim.tools.planner.space import SHAPES, parse_ints, parse_list, parse_schedulers
from sim.tools.planner.traffic import make_traffic
from sim.tools.sweep.execute import make_backend

DEFAULT_SLO = "ttft_p99=2,tpot_p99=0.1"
CAPACITY_SLO = "queue_delay_p50=2"  # Sarathi-Serve's capacity criterion: median scheduling delay <= 2 s


@dataclass
class PlanOptions:
    """The command line's options, with its defaults."""

    model: str
    traffic: str | None = None
    rate: float | None = None
    lengths: str | None = None
    format: str | None = None
    requests: int | None = None
    cv: float | None = None
    slo: str | None = None
    attainment: float = 0.9
    hardware: str = "h100-sxm,a100-80g,l40s"
    tp: str = "1,2,4,8"
    shapes: str = "colocated,disaggregated"
    schedulers: str = "fcfs,sarathi:512,sarathi:2048"
    max_batch: str = "256"
    budget: int = 64
    top: int = 3
    replications: int = 3
    router: str = "least_requests"
    margin: float = 1.5
    search_requests: int | None = None
    base: Path | None = None
    set_: list[str] | None = None
    capacity: bool = False
    instances: int = 1
    workers: int | None = None
    cluster: str | None = None
    max_simulations: int = 400
    early_stop: bool = True


class ProgressLines:
    """The search's progress as lines: the up-front count, then `[i/N] candidate: $/h verdict` per run."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.most = 0

    def __call__(self, i: int, ev: Any) -> None:
        if isinstance(ev, str):  # the up-front count
            m = re.search(r"at most (\d+) candidate runs", ev)
            self.most = int(m.group(1)) if m else 0
            self.emit(ev)
            return
        state = "meets SLO" if ev.feasible else "misses"
        of = f"/{self.most}" if self.most else ""
        self.emit(f"[{i}{of}] {ev.label}: ${ev.cost_per_hour:.2f}/h {state}")


def build_request(o: PlanOptions) -> PlanRequest:
    """Validate every option (one-line errors) and build the request."""
    model = model_arg(o.model)  # a catalogue name, a config.json or an inline spec YAML
    traffic = make_traffic(o.traffic, o.rate, o.lengths, o.format, o.requests, o.cv)
    slo = parse_slo(o.slo or (CAPACITY_SLO if o.capacity else DEFAULT_SLO), o.attainment or None)
    base: dict[str, Any] = {}
    if o.base is not None:
        data, _ = load_yaml(o.base)
        if not isinstance(data, dict):
            raise ServesimError(f"{o.base}:1:1: expected a mapping of scenario keys")
        base = data
    if o.set_:
        base = apply_overrides(base, o.set_)
    counts = {"budget": o.budget, "top": o.top, "replications": o.replications, "instances": o.instances}
    for name, val in counts.items():
        if val < 1:
            raise ServesimError(f"--{name} must be >= 1, got {val}")
    if o.margin < 1:
        raise ServesimError(f"--margin must be >= 1 (slack on the estimate that picks where to start), got {o.margin}")
    return PlanRequest(
        model=model,
        traffic=traffic,
        slo=slo,
        hardware=parse_list(o.hardware, "hardware"),
        tps=parse_ints(o.tp, "tp"),
        shapes=parse_list(o.shapes, "shapes", list(SHAPES)),
        schedulers=parse_schedulers(o.schedulers, parse_ints(o.max_batch, "max-batch")),
        budget=o.budget,
        top=o.top,
        replications=o.replications,
        margin=o.margin,
        router=o.router,
        search_requests=o.search_requests,
        base=base,
        max_simulations=o.max_simulations,
        early_stop=o.early_stop,
    )


def run_plan(o: PlanOptions, out: Path, progress: Any = None) -> tuple[PlanResult | CapacityResult, Any, list[Path]]:
    """Run the search (or the capacity search) and write its files; returns (result, rich table, files)."""
    req = build_request(o)
    check_base(
        {**(req.base or {}), "model": req.model, "hardware": req.hardware[0], "workload": req.traffic.workload}
    )  # a bad model or --base fails here, before any work
    backend = make_backend(o.workers, o.cluster)
    try:
        if o.capacity:
            cap = capacity_search(req, out, o.instances, backend)
            return cap, capacity_table(cap, req), [write_capacity(cap, req, out)]
        res = plan(req, out, backend, progress)
        return res, ranked_table(res), write_outputs(res, out)
    finally:
        backend.close()

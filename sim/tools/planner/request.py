"""What a plan asks for (`PlanRequest`) and the scenario of one candidate (configuration × size)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sim.config.scenario import load_scenario
from sim.errors import ServesimError
from sim.tools.options import blame_option
from sim.tools.planner.slo import SLOSpec
from sim.tools.planner.space import SHAPES, Config, Size, parse_schedulers
from sim.tools.planner.traffic import Traffic

DEFAULT_SCHEDULERS = "fcfs,sarathi:512,sarathi:2048"  # vLLM default; Sarathi's strict and relaxed budgets


@dataclass
class PlanRequest:
    """What to plan for and over which space."""

    model: str | dict[str, Any]  # a catalogue name, a config.json path or an inline spec
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
    early_stop: bool = True  # search runs stop once their SLO miss is certain (`sim.core.verdict`)


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


# where a field of the planner's scenario came from: the option to name in an error about it
_OPTIONS = {"model": "--model", "hardware": "--hardware", "workload.lengths": "--lengths"}
_OPTIONS |= {"workload.arrival": "--traffic/--rate", "cluster.tp": "--tp", "scheduler": "--schedulers"}


def check_base(data: dict[str, Any]) -> None:
    """Validate the planner's base scenario once; an error names the option the bad value came from (a
    field no option sets came from --base/--set), not the `<dict>` the planner built."""
    try:
        load_scenario(data)
    except ServesimError as e:
        raise blame_option(e, _OPTIONS, "--base/--set") from None

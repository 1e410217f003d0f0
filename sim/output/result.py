"""`sim.run()` and its `Result`: DataFrames, the summary dict, plots and the run directory."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.cluster.power import cost_summary
from sim.config.scenario import Scenario, load_scenario
from sim.core.engine import Progress, Simulation
from sim.core.recorder import COMPLETED
from sim.costmodel.build import prices_serving_engine
from sim.output.metrics import check_conservation, requests_frame, summarize
from sim.output.perfetto import Tracer
from sim.workload.generate import Requests

VERSION = "0.1.0"


@dataclass
class Result:
    """What one run produced. `requests` has one row per request, `timeline` one per sample per instance."""

    scenario: Scenario
    requests: pd.DataFrame
    timeline: pd.DataFrame
    summary: dict[str, Any]
    instances: pd.DataFrame

    def plot_latency_cdfs(self, ax: Any = None) -> Any:
        from sim.output import plots as _plots  # matplotlib loads on first plot, not with every run

        return _plots.latency_cdfs(self.requests, ax, self.scenario.slo.model_dump())

    def plot_timeline(self) -> Any:
        from sim.output import plots as _plots

        return _plots.timeline(self.timeline)

    def save(self, out: str | Path, plots: bool = True) -> Path:
        """Write requests.parquet, timeline.parquet, summary.json and (unless `plots=False`) plots/ under `out`."""
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        self.requests.to_parquet(d / "requests.parquet", index=False)
        self.timeline.to_parquet(d / "timeline.parquet", index=False)
        (d / "summary.json").write_text(json.dumps(jsonable(self.summary), indent=2, sort_keys=False) + "\n")
        if plots:
            from sim.output import plots as _plots

            (d / "plots").mkdir(exist_ok=True)
            _plots.save_all(self, d / "plots")
        return d


def jsonable(x: Any) -> Any:
    """Plain JSON values from a summary: numpy scalars to Python, NaN to null."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, float | np.floating):
        return None if math.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _check_tokens(sim: Simulation) -> None:
    log, out = sim.log, sim.requests.output_tokens
    done = log.status == COMPLETED
    bad = np.flatnonzero(done & (log.generated != out))
    if bad.size:
        i = int(bad[0])
        raise AssertionError(f"request {i} completed with {log.generated[i]} of {out[i]} tokens")
    over = np.flatnonzero(log.generated > out)
    if over.size:
        raise AssertionError(f"request {int(over[0])} generated more tokens than its output")


def _extra_columns(sc: Scenario, rq: Requests) -> dict[str, Any]:
    """Columns that exist only when the scenario asks for them: class, priority, predicted length, clipping."""
    extra: dict[str, Any] = {}
    if rq.cls is not None and sc.workload.classes:
        names = [c.name for c in sc.workload.classes]
        extra["class"] = pd.Categorical.from_codes(rq.cls, categories=names)
        extra["priority"] = rq.priority
    if rq.predicted is not None:
        extra["predicted_tokens"] = rq.predicted
    if rq.clipped is not None:
        extra["clipped"] = rq.clipped
    return extra


def client_view(sc: Scenario) -> dict[str, Any]:
    """`requests_frame` keywords for the times a client sees: the front end and the server's streamed chunks.
    The serving engine applies to physical cost models only (the analytic `linear` kind is an exact service
    time for theory checks)."""
    se = sc.serving_engine
    if not prices_serving_engine(sc.cost_model):
        return {"frontend_s": 0.0}
    return {
        "frontend_s": se.frontend_s,
        "stream_interval": se.stream_interval,
        "stream_first_token": se.stream_first_token,
        "first_from_decode": se.disagg_first_token != "prefill",
        "first_at_admission": se.disagg_first_token == "decode_admission",
    }


def run(
    scenario: Scenario | str | Path | dict[str, Any],
    progress: Progress | None = None,
    trace_events: str | Path | Tracer | None = None,
    *,
    requests: Requests | None = None,
    stop_on_miss: dict[str, Any] | None = None,
) -> Result:
    """Simulate a scenario (object, YAML path or dict) and return its `Result`.

    `trace_events`: a path to write a Chrome/Perfetto trace of the run to, or a `sim.output.perfetto.Tracer`.
    `requests`: the scenario's requests when built already (`build_requests(sc)`; shared across runs of one
    workload). `stop_on_miss`: stop once the run provably misses its SLO (`sim.core.verdict`, the planner).
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    tracer = trace_events if isinstance(trace_events, Tracer) or trace_events is None else Tracer(trace_events)
    sim = Simulation(sc, requests, progress=progress, tracer=tracer, stop_on_miss=stop_on_miss).run()
    check_conservation(sim.log)
    _check_tokens(sim)
    rq = sim.requests
    extra = {**_extra_columns(sc, rq), **sim.extra_columns()}
    extra = {k: v[: len(rq)] if hasattr(v, "__len__") and len(v) > len(rq) else v for k, v in extra.items()}
    view = client_view(sc)
    at_admission = view.pop("first_at_admission", False)
    if view.pop("first_from_decode", False) and "kv_transfer_s" in extra:  # disaggregated, streamed from decode
        kv, wait = extra["kv_transfer_s"], extra["decode_wait_s"]
        admitted = sim.log.first_token + kv + wait  # taken into the decode batch (NaN: not handed off)
        view["decode_ready"] = np.where(np.isnan(wait) & ~np.isnan(kv), np.inf, admitted)  # inf: not admitted yet
        view["first_at_admission"] = at_admission
    df = requests_frame(rq.arrival_s, rq.prompt_tokens, rq.output_tokens, sim.log, extra=extra, **view)
    summary = summarize(df, sim.log, sc.slo, sim.simulated_s, sc.workload.classes)
    tput = summary["throughput"]
    summary["cost"] = cost_summary(sim, tput["output_tokens_per_s"], tput["duration_s"])
    summary["cluster"] = {
        "mode": "disaggregated" if sc.cluster.disaggregated else "colocated",
        "pools": {
            p.role: {
                "instances": p.instances,
                "tp": p.tp,
                **({"pp": p.pp} if p.pp > 1 else {}),
                "hardware": p.gpu.name,
                "kv_blocks_per_instance": p.capacity.num_blocks,
                "kv_tokens_per_instance": p.capacity.tokens,
                "cost_model": getattr(p.cost, "provenance", {}),  # measured / transferred / spec-sheet parts
            }
            for p in sim.pools
        },
    }
    for feature in sim.features:
        summary[feature.name] = feature.summary()
    summary["sim"] = {
        "wall_s": sim.wall_s,
        "events": sim.env.events,
        "simulated_s": sim.simulated_s,
        "iterations": int(sum(i.iterations for i in sim.instances)),
        "kv_blocks_per_instance": sim.capacity.num_blocks,
        "kv_tokens_per_instance": sim.capacity.tokens,
    }
    if sim.stopped_early:
        summary["sim"]["stopped_early"] = sim.stopped_early
    summary["scenario"] = sc.model_dump(mode="json")
    summary["seed"] = sc.seed
    summary["version"] = VERSION
    tl = pd.DataFrame(sim.timeline, columns=["time_s", "instance", "kv_used_blocks", "running", "waiting"])
    blocks = np.array([inst.num_blocks for inst in sim.instances], dtype=np.float64)  # pools may differ
    tl["kv_utilization"] = tl["kv_used_blocks"] / blocks[tl["instance"].to_numpy(dtype=np.int64)]
    if tracer is not None:
        tracer.finish(df, tl, n_instances=len(sim.instances), metadata={"scenario": sc.name, "seed": sc.seed})
    return Result(sc, df, tl, summary, pd.DataFrame(sim.instance_stats()))

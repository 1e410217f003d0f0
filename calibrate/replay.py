"""Replay an observed run in the simulator: the same requests, driven the way the real client drove them.

Observed arrival times are replayed open-loop (a generic CSV trace written once); a log without them is
replayed closed-loop at its recorded concurrency, or open-loop at its recorded request rate. The simulated
per-request TTFT/TPOT/E2E come back in the observed order, so request i compares with request i.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibrate.observed import ObservedRun
from sim.config.scenario import Scenario, load_scenario
from sim.errors import ServesimError

METRICS = ("ttft", "tpot", "itl", "e2e")
FRONTEND = "frontend_s"  # the serving engine's per-request front-end term (HTTP, tokenisation, streaming)


def _engine_fields() -> set[str]:
    """The `serving_engine` section's fields, if the schema has one."""
    field = Scenario.model_fields.get("serving_engine")
    ann = getattr(field, "annotation", None) if field is not None else None
    fields = getattr(ann, "model_fields", None)
    return set(fields) if fields else set()


STATS = ("mean", "p50", "p90", "p99")


@dataclass
class Simulated:
    """Per-request latencies of one replay, aligned with the observed requests (NaN where not completed)."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    itl: dict[str, float]  # the pooled ITL histogram's mean/p50/p90/p99
    completed: int
    summary: dict[str, Any]


class Replay:
    """The observed run as a scenario workload; `scenario(data)` turns a scenario dict into the replay's."""

    def __init__(self, run: ObservedRun, base: Scenario, workdir: Path | None = None) -> None:
        self.run = run
        self.base = base
        self._tmp = tempfile.TemporaryDirectory(prefix="servesim-replay-") if workdir is None else None
        self.dir = Path(self._tmp.name if self._tmp is not None else str(workdir))
        self.trace = self.dir / "observed-trace.csv"
        arrival = run.arrival_s if run.arrival_s is not None else np.zeros(len(run))
        with self.trace.open("w") as f:
            f.write("arrival_s,prompt_tokens,output_tokens\n")
            for a, p, o in zip(arrival.tolist(), run.prompt_tokens.tolist(), run.output_tokens.tolist(), strict=True):
                f.write(f"{a!r},{p},{o}\n")

    def workload(self) -> dict[str, Any]:
        """The scenario `workload` section that issues the observed requests as the real client did."""
        run, n, trace = self.run, len(self.run), str(self.trace)
        lengths = {"kind": "trace", "path": trace, "format": "csv", "sample": "sequential"}
        if run.arrival_s is not None:
            return {"arrival": {"kind": "trace", "path": trace, "format": "csv"}}
        if run.concurrency is not None:
            return {
                "num_requests": n,
                "arrival": {"kind": "closed_loop", "concurrency": run.concurrency},
                "lengths": lengths,
            }
        if run.request_rate is not None and math.isfinite(run.request_rate):
            cv = 1.0 / math.sqrt(run.burstiness) if run.burstiness > 0 else 1.0
            arrival = (
                {"kind": "poisson", "rate": run.request_rate}
                if cv == 1.0
                else {"kind": "gamma", "rate": run.request_rate, "cv": cv}
            )
            return {"num_requests": n, "arrival": arrival, "lengths": lengths}
        return {"arrival": {"kind": "trace", "path": trace, "format": "csv"}}  # rate inf: all at t = 0

    def scenario(self, data: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Scenario:
        """The base scenario (or `data`, a dump of it) with the observed workload; horizon and SLO untouched."""
        d = dict(data if data is not None else scenario_data(self.base))
        d["workload"] = self.workload()
        if self.run.engine_side and FRONTEND in _engine_fields():  # the log's clock starts inside the engine
            d["serving_engine"] = {**d.get("serving_engine", {}), FRONTEND: 0.0}
        return load_scenario(d, overrides)

    def simulate(self, sc: Scenario) -> Simulated:
        import sim

        res = sim.run(sc)
        df = res.requests
        if len(df) != len(self.run):
            raise ServesimError(f"replay issued {len(df)} requests, the log has {len(self.run)}")
        ok = (df["status"] == "completed").to_numpy()

        def pick(c: str) -> np.ndarray:
            return np.where(ok, df[c].to_numpy(dtype=np.float64), np.nan)

        itl = res.summary["metrics"]["itl_s"]
        return Simulated(
            pick("ttft_s"),
            pick("tpot_s"),
            pick("e2el_s"),
            {s: itl.get(s, math.nan) for s in STATS},
            int(ok.sum()),
            res.summary,
        )

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def replay_once(run: ObservedRun, base: Scenario) -> Simulated:
    """One replay of an observed run under `base` (its workload rebuilt from the log), temporary files removed."""
    rp = Replay(run, base)
    try:
        return rp.simulate(rp.scenario())
    finally:
        rp.close()


def scenario_data(sc: Scenario) -> dict[str, Any]:
    """A scenario as a plain dict that validates back into the same scenario (no computed fields)."""
    return sc.model_dump(mode="json", exclude_none=True, exclude_computed_fields=True)


def describe(x: np.ndarray) -> dict[str, float]:
    v = x[np.isfinite(x)]
    if v.size == 0:
        return {s: math.nan for s in STATS}
    q = np.percentile(v, [50, 90, 99])
    return {"mean": float(v.mean()), "p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}


def compare(run: ObservedRun, simd: Simulated) -> dict[str, dict[str, dict[str, float]]]:
    """Measured vs simulated mean/p50/p90/p99 per metric, with signed error in % of the measured value."""
    measured = {"ttft": describe(run.ttft_s), "tpot": describe(run.tpot_s), "e2e": describe(run.e2e_s)}
    simulated = {"ttft": describe(simd.ttft_s), "tpot": describe(simd.tpot_s), "e2e": describe(simd.e2e_s)}
    if run.itl_s is not None and run.itl_s.size:
        measured["itl"] = describe(run.itl_s)
        simulated["itl"] = simd.itl
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in METRICS:
        if m not in measured:
            continue
        out[m] = {}
        for s in STATS[:1] if run.means_only else STATS:
            a, b = measured[m][s], simulated[m][s]
            err = (b - a) / a * 100 if a and math.isfinite(a) and math.isfinite(b) else math.nan
            out[m][s] = {"measured_s": a, "simulated_s": b, "error_pct": err, "abs_error_pct": abs(err)}
    return out

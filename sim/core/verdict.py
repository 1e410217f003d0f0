"""Stop a run as soon as it provably misses its SLO (the planner's screening runs).

A planner candidate is infeasible when its SLO attainment or a latency percentile misses the target at the
end of the run. Both are decided by counts of *violators* — requests known to miss — long before the run
ends when the candidate is overloaded, so simulating the rest only confirms a verdict that is already
certain. `SLOWatch` counts violators as requests finish and stops the run once the verdict cannot change:

- **attainment** (DistServe's: completed requests meeting every threshold / finished requests): a feasible
  run finishes all `n` requests (one still in flight is infeasible anyway), so attainment ≤ (n − misses) / n
  whatever the rest do; misses are completed requests over a threshold (the same float operations as
  `sim.output.metrics`) and rejected ones. Stop once (n − misses) / n < target.
- **a percentile limit** `metric_pXX ≤ L` (ttft, tpot, e2el over completed requests, numpy's linear
  percentile): with m values the percentile is at least the sorted value at index ⌊(m − 1)·q⌋, which is a
  violator once V ≥ m − ⌊(m − 1)·q⌋; that count grows with m, and m ≤ n, so V ≥ n − ⌊(n − 1)·q⌋ + 1 (one
  spare index for float rounding in numpy's index arithmetic) is certain. A violator exceeds L by a relative
  1e-9, so interpolation rounding cannot bring the percentile back to L.

Means, `itl` and `queue_delay` limits never stop a run. A stopped run's summary says why
(`sim.stopped_early`); its other numbers cover only the part simulated.
"""

from __future__ import annotations

import math
from typing import Any

from sim.core.request import Request

_METRICS = ("ttft", "tpot", "e2el")
_SLACK = 1.0 + 1e-9


class SLOWatch:
    """Counts requests that miss the SLO as they finish; `stop` succeeds once the miss is certain."""

    def __init__(self, spec: dict[str, Any], n: int, thresholds: dict[str, float | None], stop: Any) -> None:
        """`spec`: {"attainment": target or None, "targets": [[metric, percentile, limit_s], ...]};
        `thresholds`: the scenario's SLO (ttft_s, tpot_s, e2el_s) that attainment scores; `stop`: an event."""
        self.n = n
        self.stop = stop
        self.reason = ""
        self.att = spec.get("attainment")
        self.th = (thresholds.get("ttft_s"), thresholds.get("tpot_s"), thresholds.get("e2el_s"))
        self.misses = 0
        # per percentile target: [metric index, limit with slack, violators, violators that make it certain]
        self.targets: list[list[Any]] = []
        for metric, pct, limit in spec.get("targets", []):
            if metric in _METRICS and n:
                need = n - ((n - 1) * int(pct)) // 100 + 1
                self.targets.append([_METRICS.index(metric), float(limit) * _SLACK, 0, need, f"{metric}_p{pct}"])

    def completed(self, req: Request) -> None:
        ttft = req.first_token - req.arrival
        e2el = req.completion - req.arrival
        tpot = (e2el - ttft) / float(req.output - 1) if req.output > 1 else math.nan
        values = (ttft, tpot, e2el)
        t, p, e = self.th
        if (t is not None and not ttft <= t) or (p is not None and tpot > p) or (e is not None and not e2el <= e):
            self._miss()
        for tg in self.targets:
            if values[tg[0]] > tg[1]:
                tg[2] += 1
                if tg[2] >= tg[3] and not self.reason:
                    self._end(f"{tg[4]}: {tg[2]} requests over the limit make it certain")

    def rejected(self) -> None:
        self._miss()

    def _miss(self) -> None:
        self.misses += 1
        if self.att is not None and (self.n - self.misses) / self.n < self.att and not self.reason:
            self._end(f"attainment: {self.misses} of {self.n} requests missed the SLO")

    def _end(self, why: str) -> None:
        self.reason = why
        if not self.stop.triggered:
            self.stop.succeed()

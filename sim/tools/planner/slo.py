"""Service-level objectives for planning: percentile limits plus a DistServe-style attainment target.

`--slo ttft_p99=2,tpot_p99=0.1` sets limits on the run's latency percentiles; `--attainment 0.9` also
asks that 90% of requests meet every latency threshold at once (DistServe's SLO attainment, with the
thresholds taken from the same limits). A configuration is feasible when every limit and the
attainment hold in its simulation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sim.errors import ServesimError

METRICS = ("ttft", "tpot", "itl", "e2el", "queue_delay")
STATS = ("mean", "p50", "p90", "p95", "p99")
_SCENARIO_SLO = {"ttft": "ttft_s", "tpot": "tpot_s", "e2el": "e2el_s"}  # thresholds the simulator scores


def secs(x: float) -> str:
    """Seconds for a log line with enough digits to tell a miss from the limit: `2.00 s`, `0.150 s`, `8.0 ms`."""
    if not math.isfinite(x):
        return f"{x} s"
    if abs(x) >= 1:
        return f"{x:.2f} s"
    if abs(x) >= 0.01:
        return f"{x:.3f} s"
    return f"{x * 1000:.1f} ms"


@dataclass(frozen=True)
class Target:
    metric: str
    stat: str
    limit_s: float

    @property
    def column(self) -> str:
        return f"{self.metric}_{self.stat}_s"

    @property
    def quantile(self) -> float:
        return 0.5 if self.stat == "mean" else int(self.stat[1:]) / 100

    def __str__(self) -> str:
        return f"{self.metric}_{self.stat}<={self.limit_s:g}s"


@dataclass(frozen=True)
class SLOSpec:
    targets: tuple[Target, ...]
    attainment: float | None = 0.9

    def limit(self, metric: str) -> Target | None:
        """The strictest-percentile target of a metric (its threshold is what attainment scores)."""
        ts = [t for t in self.targets if t.metric == metric]
        return max(ts, key=lambda t: t.quantile) if ts else None

    def scenario_slo(self) -> dict[str, float]:
        """The scenario's `slo` section, so the simulator's attainment uses the same thresholds."""
        out = {}
        for m, key in _SCENARIO_SLO.items():
            t = self.limit(m)
            if t is not None:
                out[key] = t.limit_s
        return out

    def stop_spec(self) -> dict[str, Any]:
        """What a run may stop on once its miss is certain (`sim.core.verdict`): attainment and the
        percentile limits of per-request metrics; means, itl and queue_delay never stop a run."""
        targets = [[t.metric, int(t.stat[1:]), t.limit_s] for t in self.targets if t.stat != "mean"]
        att = self.attainment if self.attainment is not None and self.scenario_slo() else None
        return {"attainment": att, "targets": [t for t in targets if t[0] in _SCENARIO_SLO]}

    def check(self, row: dict[str, Any]) -> tuple[bool, float, str]:
        """(feasible, headroom, why not). Headroom is the smallest relative slack over all limits."""
        if row.get("status") != "ok":
            return False, -math.inf, f"failed: {row.get('error', '')}"
        misses, slack = [], math.inf
        for t in self.targets:
            v = row.get(t.column, math.nan)
            v = math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            slack = min(slack, 1.0 - v / t.limit_s)
            if v > t.limit_s:
                misses.append(f"{t.metric} {t.stat} {secs(v)} > {secs(t.limit_s)}")
        if self.attainment is not None and self.scenario_slo():
            att = row.get("slo_attainment", math.nan)
            att = 0.0 if att is None or math.isnan(att) else float(att)
            slack = min(slack, (att - self.attainment) / max(1e-9, 1.0 - self.attainment))
            if att < self.attainment:
                misses.append(f"attainment {att:.1%} < {self.attainment:.0%}")
        if row.get("stopped_early"):
            misses.append(f"stopped early, miss certain ({row['stopped_early']})")
        elif row.get("in_flight", 0):
            misses.append(f"{row['in_flight']} requests still in flight at the horizon")
        return not misses, slack, "; ".join(misses)

    def __str__(self) -> str:
        s = ", ".join(map(str, self.targets))
        return s + (f", attainment>={self.attainment:.0%}" if self.attainment is not None else "")


def _seconds(text: str, item: str) -> float:
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*(ms|s)?\s*", text)
    try:
        v = float(m.group(1)) if m else math.nan
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v <= 0:
        raise ServesimError(f"--slo {item!r}: expected a positive number of seconds (or 200ms)")
    return v / 1000 if m and m.group(2) == "ms" else v


def parse_slo(text: str, attainment: float | None = 0.9) -> SLOSpec:
    """`ttft_p99=2,tpot_p99=0.1` (seconds; `200ms` also works) into an `SLOSpec`."""
    targets = []
    for item in (x for x in re.split(r"[,\s]+", text.strip()) if x):
        key, sep, val = item.partition("=")
        m = re.fullmatch(rf"({'|'.join(METRICS)})_({'|'.join(STATS)})", key.strip())
        if not sep or not m:
            raise ServesimError(
                f"--slo {item!r}: expected METRIC_STAT=SECONDS with METRIC in {', '.join(METRICS)} "
                f"and STAT in {', '.join(STATS)}, e.g. ttft_p99=2"
            )
        targets.append(Target(m.group(1), m.group(2), _seconds(val, item)))
    if not targets:
        raise ServesimError("--slo: give at least one limit, e.g. ttft_p99=2,tpot_p99=0.1")
    if attainment is not None and not 0 < attainment <= 1:
        raise ServesimError(f"--attainment must be in (0, 1], got {attainment}")
    return SLOSpec(tuple(targets), attainment)

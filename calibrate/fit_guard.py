"""The keep-the-preset rule of `calibrate.fit_run`: a fit is used only where it improves the runs it was fitted on.

Means-only runs (one mean TTFT and TPOT per closed loop, e.g. aiconfigurator's silicon rows) leave most engine
terms undetermined, and a search over them can trade one metric for another: session 5's silicon fits lowered
the soft-L1 loss of the fitted rows by buying TTFT with slower kernels while their TPOT got worse, and the
held-out rows followed (benchmarks/VALIDATION.md, "Silicon cross-fit"). The rule: the fitted values replace the
start values (the preset) only if the runs' loss (no tie-breaker) is lower AND the median |error| of the mean of
every guarded metric over the fitted runs is no worse; otherwise the fit returns the start values unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from calibrate.fit_run import FitResult


def median_abs_error(cmps: list[dict[str, Any]], metric: str) -> float:
    """Median over runs of |error| (%) of the metric's mean (`replay.compare` dicts); nan where none is finite."""
    v = [abs(c[metric]["mean"]["error_pct"]) for c in cmps if metric in c]
    v = [x for x in v if math.isfinite(x)]
    return statistics.median(v) if v else math.nan


def worse(before: list[dict[str, Any]], after: list[dict[str, Any]], metrics: tuple[str, ...]) -> list[str]:
    """The guarded metrics whose median |error| over the runs is higher after than before (a metric the fit
    makes unmeasurable, nan after but finite before, counts as worse)."""
    out = []
    for m in metrics:
        b, a = median_abs_error(before, m), median_abs_error(after, m)
        if (math.isnan(a) and not math.isnan(b)) or a > b:
            out.append(m)
    return out


def keep_preset(res: FitResult, metrics: tuple[str, ...]) -> FitResult:
    """`res` unchanged when the fit improves the fitted runs (see the module docstring), else the start values:
    `values` the start values, `after` the `before` comparison, `kept_preset` the reason."""
    reasons = worse(res.before, res.after, metrics)
    if not res.runs_cost_after < res.runs_cost_before:
        reasons.insert(0, "loss")
    if not reasons:
        return res
    return dataclasses.replace(
        res,
        values={p.path: p.x0 for p in res.params},
        after=res.before,
        at_bounds=[],
        cost_after=res.cost_before,
        runs_cost_after=res.runs_cost_before,
        kept_preset=reasons,
        rejected={"values": res.values, "after": res.after, "runs_loss_after": res.runs_cost_after},
    )

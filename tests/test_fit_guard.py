"""The silicon fit: a means-only closed-loop fit recovers known engine terms from simulated "measurements", and the
keep-the-preset rule (`calibrate.fit_guard`) returns the start values whenever the fit does not improve the
fitted runs' loss and their guarded metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import sim
from calibrate.fit_guard import keep_preset, median_abs_error, worse
from calibrate.fit_run import FitResult, Param, fit_runs
from calibrate.observed import ObservedRun
from calibrate.replay import replay_once
from tests.closed_loops import closed_scenario, means_only

PRESET = {"memory_efficiency_scale": 1.0, "frontend_s": 2e-3}
TRUTH = {"memory_efficiency_scale": 0.8, "frontend_s": 0.03}
TERMS = [("serving_engine.memory_efficiency_scale", 0.5, 1.5), ("serving_engine.frontend_s", 0.0, 0.05)]
LOOPS = ((4, 256, 48), (16, 1024, 32), (8, 2048, 24))  # (clients, isl, osl): the closed loops "measured"


def _scenario(clients: int, isl: int, osl: int, engine: dict[str, Any]) -> sim.Scenario:
    return closed_scenario(clients, isl, osl, {"kind": "vllm-v1", **engine})


def _measured(engine: dict[str, Any]) -> list[tuple[ObservedRun, sim.Scenario]]:
    """Each loop simulated under `engine` as a means-only observed run (one mean TTFT and TPOT, as the silicon rows
    give), paired with the loop's scenario at the preset's terms."""
    pairs = []
    for c, isl, osl in LOOPS:
        template = means_only(c, isl, osl, 1.0, 0.01)
        simd = replay_once(template, _scenario(c, isl, osl, engine))
        run = means_only(c, isl, osl, float(np.nanmean(simd.ttft_s)), float(np.nanmean(simd.tpot_s)))
        pairs.append((run, _scenario(c, isl, osl, PRESET)))
    return pairs


def test_closed_loop_means_recover_the_decode_scale_and_the_request_intercept() -> None:
    res = fit_runs(_measured(TRUTH), TERMS, max_evals=26, guard=("tpot", "e2e"))
    assert res.kept_preset == []
    assert res.values["serving_engine.memory_efficiency_scale"] == pytest.approx(0.8, rel=0.05)
    assert res.values["serving_engine.frontend_s"] == pytest.approx(0.03, abs=0.004)
    assert res.diagnosis["undetermined"] == []  # TPOT pins the scale, the TTFT intercept the per-request time
    assert median_abs_error(res.after, "tpot") < 2.0 < median_abs_error(res.before, "tpot")


def test_measurements_the_preset_already_matches_keep_the_preset() -> None:
    """At the preset's own simulated means the start is the best point there is: the fit returns it exactly."""
    res = fit_runs(_measured(PRESET), TERMS, max_evals=8, guard=("tpot", "e2e"), diagnose=False)
    assert res.kept_preset and res.kept_preset[0] == "loss"
    assert res.values == {"serving_engine.memory_efficiency_scale": 1.0, "serving_engine.frontend_s": 2e-3}
    assert res.after == res.before


def _cmp(ttft: float, tpot: float, e2e: float) -> dict[str, Any]:
    return {m: {"mean": {"error_pct": e}} for m, e in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e))}


def _result(before: list[dict[str, Any]], after: list[dict[str, Any]], loss: tuple[float, float]) -> FitResult:
    p = Param("serving_engine.memory_efficiency_scale", 0.5, 1.5, 1.0)
    return FitResult(
        [p], {p.path: 0.6}, before, after, 10, 1.0, [p.path], loss[0], loss[1],
        runs_cost_before=loss[0], runs_cost_after=loss[1],
    )  # fmt: skip


def test_a_fit_that_buys_ttft_with_tpot_keeps_the_preset() -> None:
    """Session 5's failure: the loss falls (TTFT much better) while TPOT gets worse on the fitted rows."""
    before = [_cmp(-60, 5, -10), _cmp(-70, -8, -20), _cmp(-50, 10, 0)]
    after = [_cmp(-20, 25, 5), _cmp(-30, 12, -5), _cmp(-10, 30, 10)]
    assert worse(before, after, ("tpot", "e2e")) == ["tpot"]  # tpot medians 8 -> 25; e2e 10 -> 5
    kept = keep_preset(_result(before, after, (1.0, 0.5)), ("tpot", "e2e"))
    assert kept.kept_preset == ["tpot"]
    assert kept.values == {"serving_engine.memory_efficiency_scale": 1.0}
    assert kept.after is before and kept.at_bounds == [] and kept.runs_cost_after == 1.0


def test_a_fit_that_improves_every_guarded_metric_is_used() -> None:
    before = [_cmp(-60, 20, -10), _cmp(-70, -18, -20)]
    after = [_cmp(-50, 5, -4), _cmp(-60, -3, -6)]
    res = _result(before, after, (1.0, 0.2))
    assert keep_preset(res, ("tpot", "e2e")) is res
    # the loss alone decides too: a lower median with a higher loss is not a better fit
    assert keep_preset(_result(before, after, (1.0, 1.0)), ("tpot", "e2e")).kept_preset == ["loss"]


def test_a_metric_the_fit_makes_unmeasurable_counts_as_worse() -> None:
    before, after = [_cmp(-60, 20, -10)], [_cmp(-60, math.nan, -10)]
    assert worse(before, after, ("tpot",)) == ["tpot"]


def test_a_zero_weight_leaves_a_metric_out_of_the_residuals() -> None:
    """The silicon fit's objective (TTFT weight 0): TTFT's residual is 0 however far off, TPOT's the log-ratio."""
    from calibrate.fit_run import residuals
    from calibrate.replay import Simulated

    run = means_only(2, 100, 11, ttft=1.0, tpot=0.01)
    simd = Simulated(np.full(6, 0.1), np.full(6, 0.02), np.full(6, 0.1 + 0.2), {}, 6, {})
    r = residuals(run, simd, {"ttft": 0.0, "tpot": 1.0, "e2e": 1.0})
    assert r[0] == 0.0 and r[1] == pytest.approx(math.log(2.0)) and r[2] == pytest.approx(math.log(0.3 / 1.1))
    assert residuals(run, simd)[0] == pytest.approx(math.log(0.1))  # default weights: TTFT counts

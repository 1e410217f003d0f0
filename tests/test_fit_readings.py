"""Another reading of the scenario chosen by leave-one-out in the means fit (`calibrate.fit_means.READINGS`: the
routed experts as one grouped launch): chosen where the runs were made under it, not where they were not, guarded
against the preset (never against the reading's own base), and carried into the fitted scenario and the profile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import sim
from calibrate import fit_linear as fl
from calibrate import fit_means as fm
from calibrate.observed import ObservedRun
from calibrate.replay import replay_once
from tests.closed_loops import closed_scenario, means_only, simulated_pairs

MEM = fl.Term("serving_engine.memory_efficiency_scale", 0.5, 1.5, 1.0, log=True)
LAYER = fl.Term("cost_model.layer_overhead_s", 0.0, 1e-4, 0.0, log=False)
ONE = ("serving_engine.moe_grouped_gemm", "one_launch")


def _slopes(n: int) -> list[np.ndarray]:
    """Per row (TTFT, TPOT, E2E x memory scale, per-layer time): the memory scale lowers TPOT and E2E by the row's
    memory-bound share, the per-layer time raises them the more the smaller the batch."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(n):
        share, small = rng.uniform(0.4, 0.9), rng.uniform(0.05, 0.6)
        out.append(np.array([[-0.05, 0.1], [-share, small], [-0.9 * share, 0.9 * small]]))
    return out


def _problem(reading: tuple[str, str] | None, meas: list[np.ndarray], bases: list[np.ndarray]) -> fm.Problem:
    rows = [fl.Linearised(m, b, np.zeros(2), s) for m, b, s in zip(meas, bases, _slopes(len(meas)), strict=True)]
    p = fm.Problem(reading, [], [MEM, LAYER], [(b, {}) for b in bases], [[0], [0, 1]])
    p.rows = rows
    return p


def _two(truth: str) -> list[fm.Problem]:
    """Five rows measured under the reading at moves (-0.2, 0.3) (`truth` "reading") or at the preset itself
    ("preset"); the preset's bases are off by a per-row amount no term describes (the reading's shape)."""
    rng = np.random.default_rng(7)
    base_alt = [np.log(np.array([0.2, 0.02, 2.0])) + 0.01 * k for k in range(5)]
    base_pre = [b + np.array([0.0, 1.0, 0.9]) * rng.uniform(-0.25, 0.25) for b in base_alt]
    if truth == "reading":
        meas = [b + s @ np.array([-0.2, 0.3]) for b, s in zip(base_alt, _slopes(5), strict=True)]
    else:
        meas = list(base_pre)
    return [_problem(None, meas, base_pre), _problem(ONE, meas, base_alt)]


def test_leave_one_out_chooses_the_reading_the_rows_were_made_under() -> None:
    k, active, scores = fm.choose_reading(_two("reading"))
    assert (k, active) == (1, [0, 1]), scores
    assert scores["moe_grouped_gemm=one_launch+memory_efficiency_scale+layer_overhead_s"] < 0.1  # the prior only
    assert scores[""] > 5.0  # the preset's own error on the rows


def test_rows_at_the_preset_keep_its_reading() -> None:
    k, active, scores = fm.choose_reading(_two("preset"))
    assert (k, active) == (0, []), scores
    assert scores[""] == 0.0


def _logs(errs: list[tuple[float, float, float]]) -> list[np.ndarray]:
    return [np.log1p(np.array(e) / 100.0) for e in errs]


def _flat(errs: tuple[float, float, float]) -> list[fl.Linearised]:
    """Three rows measured at 0, replayed at `errs` (%) under the reading, no slope."""
    return [fl.Linearised(np.zeros(3), b, np.zeros(1), np.zeros((3, 1))) for b in _logs([errs] * 3)]


def test_the_guard_compares_a_reading_with_the_preset_not_with_its_own_base() -> None:
    """No term freed: the reading's base is the only candidate. Better than the preset on TTFT, TPOT and E2E: used
    (zero moves, the reading's logs); worse on TTFT than the preset (the reading prices prompts too): not."""
    preset = _logs([(-30, 20, 20)] * 3)
    moves, logs, reasons, _, _ = fl.fit(_flat((-20, 5, 5)), [MEM], [], lambda m: [], reference=preset)
    assert logs is not None and reasons == [] and not moves.any()
    rows = _flat((-40, 5, 5))
    moves, logs, reasons, _, _ = fl.fit(rows, [MEM], [], lambda m: [], reference=preset)
    assert logs is None and reasons == ["ttft"]
    # without a reference the same rows are the preset: nothing freed, nothing to use
    assert fl.fit(rows, [MEM], [], lambda m: [])[2] == ["every freed term on a bound"]


LOOPS = ((2, 512, 48), (32, 1024, 32), (8, 2048, 40), (128, 256, 24))


def _pairs(
    loops: tuple[tuple[int, int, int], ...], truth: dict[str, Any], layer_s: float = 0.0
) -> list[tuple[ObservedRun, sim.Scenario]]:
    return simulated_pairs(loops, truth, layer_s, model="qwen3-30b-a3b")


def test_loops_made_under_one_launch_choose_it_and_recover_the_per_layer_time() -> None:
    from benchmarks.validation_silicon_fit import fit_subgroup

    truth, layer_s = {"moe_grouped_gemm": "one_launch", "memory_efficiency_scale": 0.9}, 4e-5
    g = fit_subgroup(_pairs(LOOPS, truth, layer_s), _pairs(((16, 768, 36), (64, 512, 30)), truth, layer_s))
    assert g["kept_preset"] == [] and g["reading"] == dict([ONE]), g["loo"]
    assert g["values"]["cost_model.layer_overhead_s"] == pytest.approx(layer_s, rel=0.15)
    assert g["values"]["serving_engine.memory_efficiency_scale"] == pytest.approx(0.9, rel=0.05)
    assert max(abs(e["tpot"]) for e in g["presets"]) > 15.0  # the preset reading is off on the reported loops
    assert max(abs(e[m]) for e in g["fitted"] for m in ("tpot", "e2e")) < 2.0


def test_loops_made_under_the_preset_reading_do_not_switch_it() -> None:
    from benchmarks.validation_silicon_fit import fit_subgroup

    g = fit_subgroup(_pairs(LOOPS, {"memory_efficiency_scale": 0.8}), _pairs(((16, 768, 36),), {}))
    assert g["readings_tried"] == ["moe_grouped_gemm=one_launch"]
    assert g["reading"] == {} and "serving_engine.moe_grouped_gemm" not in g["chosen"], g["loo"]
    assert g["values"]["serving_engine.memory_efficiency_scale"] == pytest.approx(0.8, rel=0.05)


def test_a_dense_model_tries_no_reading() -> None:
    """Llama-3.1-8B has no routed experts: the reading changes no replay, so it costs no probes and is not offered."""
    pairs = []
    for c, isl, osl in LOOPS[:3]:
        sc = closed_scenario(c, isl, osl, {"kind": "sglang"})
        simd = replay_once(means_only(c, isl, osl, 1.0, 0.01), sc)
        pairs.append((means_only(c, isl, osl, float(np.nanmean(simd.ttft_s)), float(np.nanmean(simd.tpot_s))), sc))
    res = fm.fit_means(pairs)
    assert res.diagnosis["readings_tried"] == [] and res.diagnosis["reading"] == {}


def test_the_profile_carries_the_reading(tmp_path: Any) -> None:
    """`calibrate fit-run`'s overlay sets the reading it chose, so `servesim run --profile` prices as the fit did."""
    from calibrate.fit_run import overlay

    pairs = _pairs(LOOPS, {"moe_grouped_gemm": "one_launch", "memory_efficiency_scale": 0.9}, 4e-5)
    res = fm.fit_means(pairs)
    doc = overlay(res, [r for r, _ in pairs], None)
    assert doc["serving_engine"]["moe_grouped_gemm"] == "one_launch"
    assert fm.fitted(pairs[0][1], res).serving_engine.moe_grouped_gemm == "one_launch"


def test_a_reading_the_guard_rejects_on_ttft_is_refitted_with_its_ttft_terms() -> None:
    """Loops made under one launch with slower prefill kernels (compute scale 0.6) and 40 us per layer: leave-one-out
    picks the reading with the memory scale, whose replays make the fitted loops' TTFT worse than the preset's (the
    reading prices prompt steps faster and its ladder frees no compute term), so the guard rejects it. Refitted with
    every term of the reading, the TTFT ones included (`fit_means._ttft_retry`), the guard accepts it and the fit
    recovers the truth (s13-fit's fit fell back to the scenario's own reading here: reported TPOT +54 %)."""
    from benchmarks.validation_silicon_fit import fit_subgroup

    truth = {"moe_grouped_gemm": "one_launch", "compute_efficiency_scale": 0.6}
    g = fit_subgroup(_pairs(LOOPS, truth, 4e-5), _pairs(((16, 768, 36),), truth, 4e-5))
    first = g["ttft_retry"]["after"]
    assert first["chosen"].startswith("moe_grouped_gemm=one_launch") and "ttft" in first["kept_preset"], g["loo"]
    assert g["reading"] == dict([ONE]) and g["reading_rejected"] == {} and g["kept_preset"] == []
    assert "serving_engine.compute_efficiency_scale" in g["chosen"] and "serving_engine.frontend_s" in g["chosen"]
    assert g["values"]["serving_engine.compute_efficiency_scale"] == pytest.approx(0.6, rel=0.05)
    assert g["values"]["cost_model.layer_overhead_s"] == pytest.approx(4e-5, rel=0.15)
    assert g["values"]["serving_engine.memory_efficiency_scale"] == pytest.approx(1.0, rel=0.05)
    assert max(abs(e["tpot"]) for e in g["presets"]) > 40.0
    assert max(abs(e[m]) for e in g["fitted"] for m in ("ttft", "tpot", "e2e")) < 2.0


def test_the_ttft_retry_frees_every_term_of_the_reading_once() -> None:
    """The retry is the reading's whole set (ladder and TTFT terms); none where no TTFT term is there to add, so a
    reading without them (or already fitted with all of them) goes straight to the scenario's own reading."""
    comp = fl.Term("serving_engine.compute_efficiency_scale", 0.5, 1.5, 1.0, log=True, ttft=True)
    p = fm.Problem(ONE, [], [MEM, LAYER, comp], [], [[0], [0, 1]])
    assert fm._ttft_retry(p, [0]) == [0, 1, 2]
    assert fm._ttft_retry(p, [0, 1, 2]) == []
    assert fm._ttft_retry(fm.Problem(ONE, [], [MEM, LAYER], [], [[0], [0, 1]]), [0]) == []

"""Which terms the fitted rows can place (`calibrate.fit_quality.identified`, `calibrate.fit_linear.identifiable`):
hand-computed Jacobians, linear rows made from known terms recovered with the term the rows cannot tell apart from
another kept at its preset, the refused reading's retry freeing only what its rows identify, and `fit_runs(identify=
True)` freezing a term a TP1 run cannot see while it recovers the one it can."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import sim
from calibrate import fit_linear as fl
from calibrate import fit_means
from calibrate.fit_quality import NOISE, UNDETERMINED, identified
from calibrate.fit_run import fit_runs
from calibrate.observed import read_observed
from tests.test_fit_joint import PARAMS, _observed

MEM = fl.Term("serving_engine.memory_efficiency_scale", 0.5, 1.5, 1.0, log=True)
LAYER = fl.Term("cost_model.layer_overhead_s", 0.0, 1e-4, 0.0, log=False)
FRONT = fl.Term("serving_engine.frontend_s", 0.0, 0.05, 2e-3, log=False, ttft=True)
COMPUTE = fl.Term("serving_engine.compute_efficiency_scale", 0.5, 1.5, 1.0, log=True, ttft=True)
TERMS = [MEM, LAYER, FRONT, COMPUTE]


def test_identified_on_a_hand_made_jacobian() -> None:
    a = [1.0, 0.0, 0.0, 0.0]
    b = [2.0, 0.01, 0.0, 0.0]  # a's part off b is 0.005 (sd 0.01 / 0.005 = 2 boxes): the rows fix a combination
    c = [0.0, 0.0, 1.0, 0.0]
    d = [0.0, 0.0, 0.0, 0.01]  # moving d across its box moves one residual by the noise: sd = 1 box
    keep, frozen = identified(np.array([a, b, c, d]).T, ["a", "b", "c", "d"])
    assert keep == [1, 2]  # b first (largest column), then c (orthogonal to it); a is b's shadow
    assert frozen == {"a": "trades off with b, c", "d": "flat"}


def test_identified_frees_a_term_whose_sd_is_at_most_half_its_box() -> None:
    # sd = NOISE / remainder: the remainder just above / below NOISE / UNDETERMINED (0.02 per box)
    for rest, freed in ((0.0201, True), (0.0199, False)):
        x = np.array([[1.0, 0.3], [0.0, rest]])
        keep, frozen = identified(x, ["x", "y"])
        assert keep == ([0, 1] if freed else [0]), rest
        assert frozen == ({} if freed else {"y": "trades off with x"})
    assert pytest.approx(0.02) == NOISE / UNDETERMINED
    # a correlation of 0.99 with an already freed term is no reason on its own: strong, exact rows place both
    x = np.array([[1.0, 0.99], [0.0, math.sqrt(1 - 0.99**2)]])
    assert identified(x, ["x", "y"]) == ([0, 1], {})


def _rows(truth: np.ndarray, n: int = 4, seed: int = 3) -> list[fl.Linearised]:
    """Rows exactly linear in the moves: TPOT / E2E fall with the memory scale by the row's memory-bound share and
    rise with the per-layer time the more the smaller the batch; TTFT rises with the front-end time and falls with
    the prefill compute scale in the same proportion on every row (the rows cannot tell those two apart)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        share, small, t = rng.uniform(0.4, 0.9), rng.uniform(0.05, 0.6), rng.uniform(0.2, 0.5)
        s = np.array(
            [
                [-0.05, 0.02, t, -0.5 * t],
                [-share, small, 0.0, 0.0],
                [-share * 0.9, small * 0.9, 0.1 * t, -0.05 * t],
            ]
        )
        base = np.log(np.array([0.2, 0.02, 2.0])) + 0.01 * k
        out.append(fl.Linearised(base + s @ truth, base, np.zeros(len(truth)), s))
    return out


def test_rows_from_known_terms_are_recovered_and_the_unplaceable_term_keeps_its_preset() -> None:
    truth = np.array([MEM.move(0.8), LAYER.move(4e-5), FRONT.move(0.02), 0.0])
    rows = _rows(truth)
    assert fl.identifiable(rows, TERMS, range(4)) == [0, 1, 2]  # the compute scale is the front end's shadow
    got = fl.solve(rows, TERMS, fl.identifiable(rows, TERMS, range(4)), prior=0.0)
    assert got == pytest.approx(truth, abs=1e-9)
    assert MEM.value(got[0]) == pytest.approx(0.8) and FRONT.value(got[2]) == pytest.approx(0.02)
    assert got[3] == 0.0  # frozen: exactly the preset, not a split of the front end's move
    # without the choice the prior splits the TTFT move between the two terms the rows cannot tell apart
    assert fl.solve(rows, TERMS, [0, 1, 2, 3])[3] != 0.0


def test_choose_never_offers_a_set_the_rows_cannot_tell_apart() -> None:
    truth = np.array([MEM.move(0.8), LAYER.move(4e-5), FRONT.move(0.02), 0.0])
    _, scores = fl.choose(_rows(truth), TERMS, ([0], [0, 1], [0, 1, 2], [0, 1, 2, 3]))
    assert "memory_efficiency_scale+layer_overhead_s+frontend_s" in scores
    assert not any(k.endswith("compute_efficiency_scale") for k in scores)


def test_a_refused_readings_retry_frees_only_what_its_rows_identify() -> None:
    truth = np.array([MEM.move(0.8), LAYER.move(4e-5), FRONT.move(0.02), 0.0])
    p = fit_means.Problem(("serving_engine.moe_grouped_gemm", "one_launch"), [], TERMS, [], [[0], [0, 1]])
    p.rows = _rows(truth)
    assert fit_means._ttft_retry(p, [0, 1]) == [0, 1, 2]  # not the compute scale: it trades off with the front end
    p.rows = _rows(truth)[:1]  # one row: the per-layer time is now the memory scale's shadow too (3 means, 4 terms)
    retry = fit_means._ttft_retry(p, [0])
    assert 3 not in retry and len(retry) < 4


def test_fit_runs_identify_freezes_what_a_tp1_run_cannot_see(tmp_path: Path) -> None:
    obs, sc = _observed(tmp_path, 1)
    res = fit_runs([(read_observed(obs), sim.load_scenario(sc))], PARAMS, max_evals=18, identify=True)
    assert res.frozen == {"serving_engine.allreduce_bw_scale": "flat"}
    assert res.values["serving_engine.allreduce_bw_scale"] == res.params[1].x0  # exactly the preset
    assert res.values["serving_engine.memory_efficiency_scale"] == pytest.approx(0.8, rel=0.05)
    assert res.evaluations <= 18

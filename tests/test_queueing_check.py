"""The simulator against queueing theory (sim/tools/queueing_check/, `servesim check-queueing`).

Three layers: (1) the engine reproduces each model's queue *exactly* on a given sample (hand case,
Lindley's recursion, direct batch recursions) — the strongest check, no statistics; (2) replications
put the closed form inside the 95% CI at ρ = 0.3, 0.6, 0.8 (small budgets, fixed seeds); (3) the
command line and its JSON. Plus the properties of the clipping formulas the issue asks for that
tests/test_queueing_theory.py does not already cover.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from typer.testing import CliRunner

import queueing as q
import sim
from sim.tools import queueing_check as check
from sim.tools.cli import app
from sim.tools.queueing_check import scenarios, setups
from tests.strategies import token_pmfs

RHOS = (0.3, 0.6, 0.8)


def lindley_waits(arrival: np.ndarray, service: np.ndarray) -> np.ndarray:
    """FCFS single-server waits: W_n = max(0, W_{n-1} + S_{n-1} − (A_n − A_{n-1}))."""
    steps = np.concatenate(([0.0], np.cumsum(service[:-1] - np.diff(arrival))))
    return steps - np.minimum.accumulate(steps)


def batch_waits(arrival: np.ndarray, alpha: float, tau0: float, cap: int | None) -> np.ndarray:
    """Dynamic batching: a free server takes everything waiting (at most `cap`); idle → batch of 1."""
    n = arrival.size
    wait = np.empty(n)
    i, t = 0, 0.0
    while i < n:
        t = max(t, arrival[i])
        j = min(int(np.searchsorted(arrival, t, side="right")), i + (cap or n))
        wait[i:j] = t - arrival[i:j]
        t += tau0 + alpha * (j - i)
        i = j
    return wait


def fixed_waits(arrival: np.ndarray, alpha: float, tau0: float, b: int) -> np.ndarray:
    """Fixed batching: batches of b consecutive arrivals served FCFS, each taking τ0 + α·b."""
    ready = arrival[b - 1 :: b]
    start = np.empty(ready.size)
    end = 0.0
    for k, r in enumerate(ready):
        start[k] = max(r, end)
        end = start[k] + tau0 + alpha * b
    return np.repeat(start, b) - arrival[: ready.size * b]


def one_run(name: str, rho: float, n: int, tmp: Path, seed: int = 7) -> sim.Result:
    setup = check.SETUPS[name]
    return sim.run(setup.build(setup.lam(rho), np.random.SeedSequence(seed), n, tmp))


# --------------------------------------------------------------------------- exact on a sample


@pytest.mark.parametrize("fast_forward", [True, False])
def test_hand_case(tmp_path: Path, fast_forward: bool) -> None:
    # c = 0.1, a = 0.2: S = c + a·n = 0.7, 0.5, 0.3, 0.3 for n = 3, 2, 1, 1
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,3\n0.5,1,2\n0.6,1,1\n5,1,1\n")
    sc = scenarios.check_scenario(
        "hand",
        np.random.SeedSequence(0),
        {"arrival": {"kind": "trace", "path": str(trace), "format": "csv"}},
        scenarios.prompt_one_cost(0.2, 0.1),
        engine={"fast_forward": fast_forward},
    )
    df = sim.run(sc).requests
    assert df["first_scheduled_s"].to_numpy() == pytest.approx([0.0, 0.7, 1.2, 5.0])
    assert df["queue_delay_s"].to_numpy() == pytest.approx([0.0, 0.2, 0.6, 0.0])
    assert df["completion_s"].to_numpy() == pytest.approx([0.7, 1.2, 1.5, 5.3])


@pytest.mark.parametrize(
    ("name", "c"), [("mm1-geo", 0.0), ("md1", check.MD1_C), ("mg1-azure", 0.0), ("mg1-azure-clip", 0.0)]
)
def test_engine_is_lindley(tmp_path: Path, name: str, c: float) -> None:
    """With batch size 1 every request's queue delay is the FCFS wait of S = c + a·n, to rounding."""
    df = one_run(name, 0.8, 3000, tmp_path).requests
    n = df["output_tokens"].to_numpy()
    if name == "mg1-azure-clip":
        assert n.max() <= check.CLIP_N_MAX and (n == check.CLIP_N_MAX).any()
    arrival = df["arrival_s"].to_numpy()
    service = c + check.A * n
    assert df["queue_delay_s"].to_numpy() == pytest.approx(lindley_waits(arrival, service), abs=1e-6)
    assert df["e2el_s"].to_numpy() == pytest.approx(lindley_waits(arrival, service) + service, abs=1e-6)


@pytest.mark.parametrize(("name", "cap"), [("dyn-batch", None), ("dyn-batch-cap", check.DYN_B_MAX)])
def test_engine_is_dynamic_batching(tmp_path: Path, name: str, cap: int | None) -> None:
    df = one_run(name, 0.8, 3000, tmp_path).requests
    expect = batch_waits(df["arrival_s"].to_numpy(), check.BATCH_ALPHA, check.BATCH_TAU0, cap)
    assert df["queue_delay_s"].to_numpy() == pytest.approx(expect, abs=1e-6)


def test_engine_is_fixed_batching(tmp_path: Path) -> None:
    df = one_run("fixed-batch", 0.8, 3000, tmp_path).requests
    expect = fixed_waits(df["arrival_s"].to_numpy(), check.BATCH_ALPHA, check.BATCH_TAU0, check.FIXED_B)
    assert len(df) == expect.size
    assert df["queue_delay_s"].to_numpy() == pytest.approx(expect, abs=1e-6)


# --------------------------------------------------------------------------- theory inside the CI


def test_exact_models_theory_inside_ci() -> None:
    """Exact formulas inside their CIs at ρ = 0.3, 0.6, 0.8 (6 replications x 2000 requests, seed 0).

    Each asserted row must hold at its Bonferroni level (the command's exit status), and no more rows
    miss their own 95% CI than chance allows: with k rows the misses are Binomial(k, 0.05) for a correct
    simulator, and more than its 99.9% quantile would point at a real bias.
    """
    models = [*check.EXACT_SETUPS, "dyn-batch", "dyn-batch-cap", "elastic-batch", "fixed-batch"]
    rep = check.run_checks(RHOS, replications=6, requests=2000, models=models, seed=0, workers=2)
    assert {r.model for r in rep.rows} >= set(check.EXACT_SETUPS)
    assert all(r.kind in ("exact", "bound") for r in rep.rows)
    assert rep.passed, [r for r in rep.rows if not r.passed]
    misses = [r for r in rep.rows if not r.in_ci]
    assert len(misses) <= binom.ppf(0.999, len(rep.rows), 0.05), misses


def test_results_do_not_depend_on_workers() -> None:
    kw: dict[str, Any] = {"replications": 2, "requests": 300, "models": ["md1", "dyn-batch"], "seed": 3}
    one = check.run_checks([0.5], workers=1, **kw)
    two = check.run_checks([0.5], workers=2, **kw)
    assert [r.to_json() for r in one.rows] == [r.to_json() for r in two.rows]
    other = check.run_checks([0.5], workers=1, **(kw | {"seed": 4}))
    assert one.rows[0].sim_s != other.rows[0].sim_s


# --------------------------------------------------------------------------- verdicts and helpers


def row(kind: check.Kind, theory: float, lo: float, hi: float) -> check.CheckRow:
    return check.CheckRow("m", 0.5, theory, (lo + hi) / 2, lo, hi, lo - 1, hi + 1, kind, 2, 10)


def test_verdicts() -> None:
    assert row("exact", 1.0, 0.9, 1.1).in_ci
    assert not row("exact", 1.2, 0.9, 1.1).in_ci and row("exact", 1.2, 0.9, 1.1).passed  # Bonferroni saves it
    assert not row("exact", 3.0, 0.9, 1.1).passed
    assert row("bound", 5.0, 0.9, 1.1).passed  # a bound far above the mean holds
    assert not row("bound", -1.0, 0.9, 1.1).passed  # below the widened CI: violated
    assert row("approx", 100.0, 0.9, 1.1).passed
    r = row("exact", 1.0, 0.9, 1.3)
    assert r.rel_error == pytest.approx(0.1)
    assert set(r.to_json()) >= {"model", "rho", "theory_s", "sim_s", "ci_low_s", "ci_high_s", "rel_error", "exact"}


def test_t_interval_and_parse() -> None:
    m, _, hi = check.t_interval([1.0, 2.0, 3.0])
    assert m == 2.0
    assert hi - m == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))  # t(0.975, 2)·s/√n
    with pytest.raises(ValueError):
        check.t_interval([1.0])
    assert check.parse_rhos("0.3, 0.6,0.8") == [0.3, 0.6, 0.8]
    for bad in ("", "0.3,x", "1.0", "0"):
        with pytest.raises(ValueError):
            check.parse_rhos(bad)


def test_reference_numbers() -> None:
    assert check.mm1_reference_gap() == pytest.approx(-0.5 / check.GEO_MEAN)
    es, es2 = setups.azure_moments()
    out = check.azure_outputs().astype(float)
    assert es == pytest.approx(check.A * out.mean()) and es2 == pytest.approx(check.A**2 * np.mean(out**2))


# --------------------------------------------------------------------------- command line


def test_cli_json_and_errors() -> None:
    runner = CliRunner()
    args = ["check-queueing", "--models", "md1", "--rho", "0.5", "--replications", "3", "--requests", "300"]
    res = runner.invoke(app, [*args, "--json", "--workers", "1"])
    assert res.exit_code in (0, 1), res.output
    rows = json.loads(res.stdout)
    assert [(r["model"], r["rho"], r["exact"]) for r in rows] == [("md1", 0.5, True)]
    assert res.exit_code == (0 if rows[0]["passed"] else 1)
    assert rows[0]["theory_s"] == pytest.approx(q.md1(0.5 / 1.05, 1.05).wait_s)
    assert runner.invoke(app, ["check-queueing", "--rho", "1.5"]).exit_code == 2
    assert runner.invoke(app, ["check-queueing", "--models", "nope"]).exit_code == 2
    table = runner.invoke(app, [*args, "--workers", "1"])
    assert "md1" in table.stdout and "95% CI" in table.stdout


# --------------------------------------------------------------------------- clipping properties

pmfs = token_pmfs(3000, 10)


def _pmf(pairs: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([x for x, _ in pairs], dtype=float)
    p = np.array([w for _, w in pairs])
    return v, p / p.sum()


@settings(max_examples=60)
@given(pmf=pmfs, load=st.floats(0.05, 0.95), gamma=st.floats(0.0, 200.0), extra=st.integers(0, 3000))
def test_clipping_never_raises_delay_above_the_optimum(
    pmf: list[tuple[int, float]], load: float, gamma: float, extra: int
) -> None:
    """For every n_max ≥ the objective-minimising cap: mean delay ≤ the unclipped delay, and the optimum's
    objective is no worse than not clipping at all."""
    v, p = _pmf(pmf)
    a, c = 0.01, 0.1
    lam = load / (c + a * float(v @ p))
    opt = q.optimal_n_max(lam, (v, p), a, c, penalty_per_clipped_s=gamma)
    full = q.mean_delay(lam, (v, p), a, c, None)
    n_max = opt.n_max + extra
    assert q.mean_delay(lam, (v, p), a, c, n_max).wait_s <= full.wait_s * (1 + 1e-12)
    assert opt.mean_wait_s + gamma * opt.frac_clipped <= full.wait_s * (1 + 1e-12) + 1e-12
    assert opt.mean_wait_s == pytest.approx(q.mean_delay(lam, (v, p), a, c, opt.n_max).wait_s)


@settings(max_examples=60)
@given(pmf=pmfs, u1=st.floats(0.02, 0.95), u2=st.floats(0.02, 0.95), n_max=st.integers(1, 3000))
def test_clipped_delay_monotone_in_lambda(pmf: list[tuple[int, float]], u1: float, u2: float, n_max: int) -> None:
    v, p = _pmf(pmf)
    a, c = 0.01, 0.1
    es = q.clipped_moments((v, p), a, c, n_max).es
    lo, hi = sorted((u1, u2))
    assume(hi - lo > 1e-6)
    w_lo = q.mean_delay(lo / es, (v, p), a, c, n_max)
    w_hi = q.mean_delay(hi / es, (v, p), a, c, n_max)
    assert w_hi.wait_s >= w_lo.wait_s and w_hi.sojourn_s >= w_lo.sojourn_s and w_hi.rho > w_lo.rho
    assert w_hi.frac_clipped == w_lo.frac_clipped  # the cap, not the load, decides who is clipped


@settings(max_examples=60)
@given(pmf=pmfs, rho=st.floats(1.0001, 20.0), n_max=st.integers(1, 3000))
def test_clipped_overload_raises(pmf: list[tuple[int, float]], rho: float, n_max: int) -> None:
    v, p = _pmf(pmf)
    a, c = 0.01, 0.1
    es = q.clipped_moments((v, p), a, c, n_max).es
    with pytest.raises(q.UnstableError, match="unstable: rho"):
        q.mean_delay(rho / es, (v, p), a, c, n_max)
    # every cap unstable (λ·c ≥ 1 even with a 1-token cap): optimal_n_max raises too
    with pytest.raises(q.UnstableError):
        q.optimal_n_max(rho / (c + a), (v, p), a, c)
    with pytest.raises(q.UnstableError):
        q.elastic_batching_mean_wait(rho / a, a, c)

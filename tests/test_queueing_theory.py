"""Closed-form queueing results (queueing/): hand-computed values, properties, Monte-Carlo checks.

The Monte-Carlo checks are plain numpy (Lindley's recursion, a direct batch-by-batch simulation),
seeded, no SimPy, 200k customers each, and compare means with the closed forms within a few %.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import queueing as q
from queueing.batching import _unbounded_moments
from tests.strategies import token_pmfs

N_MC = 200_000


# --------------------------------------------------------------------------- helpers


def lognormal_pmf(mu: float, sigma: float, top: int = 60_000) -> tuple[np.ndarray, np.ndarray]:
    """P(ceil(X) = n), X ~ lognormal(mu, sigma), n = 1..top (renormalised)."""
    n = np.arange(1, top + 1, dtype=float)
    cdf = norm.cdf((np.log(n) - mu) / sigma)
    p = np.diff(np.concatenate(([0.0], cdf)))
    return n, p / p.sum()


def lindley_waits(inter: np.ndarray, serv: np.ndarray) -> np.ndarray:
    """Waits of a FCFS single-server queue: W_n = max(0, W_{n-1} + S_{n-1} - A_n), vectorised."""
    steps = np.concatenate(([0.0], np.cumsum(serv[:-1] - inter[1:])))
    return steps - np.minimum.accumulate(steps)


def mc_mg1_wait(rng: np.random.Generator, lam: float, serv: np.ndarray) -> float:
    waits = lindley_waits(rng.exponential(1.0 / lam, serv.size), serv)
    return float(waits[serv.size // 20 :].mean())  # drop a 5% warm-up


def mc_dynamic(
    rng: np.random.Generator, lam: float, alpha: float, tau0: float, n: int, b_max: int | None = None
) -> tuple[float, float]:
    """Direct simulation of dynamic batching: (mean wait to batch start, mean sojourn)."""
    arr = np.cumsum(rng.exponential(1.0 / lam, n))
    wait, soj = np.empty(n), np.empty(n)
    cap = n if b_max is None else b_max
    i, t = 0, 0.0
    while i < n:
        t = max(t, arr[i])  # idle server: the next arrival starts a batch at once
        j = min(int(np.searchsorted(arr, t, side="right")), i + cap)
        wait[i:j] = t - arr[i:j]
        t += tau0 + alpha * (j - i)
        soj[i:j] = t - arr[i:j]
        i = j
    k = n // 20
    return float(wait[k:].mean()), float(soj[k:].mean())


def mc_fixed(rng: np.random.Generator, lam: float, alpha: float, tau0: float, b: int, n: int) -> float:
    """Fixed batching: batches of b consecutive arrivals, FCFS queue of full batches."""
    n -= n % b
    arr = np.cumsum(rng.exponential(1.0 / lam, n))
    ready = arr[b - 1 :: b]
    inter = np.diff(np.concatenate(([0.0], ready)))
    start = ready + lindley_waits(inter, np.full(ready.size, tau0 + alpha * b))
    waits = np.repeat(start, b) - arr
    return float(waits[n // 20 :].mean())


def mc_mmc_sojourn(rng: np.random.Generator, lam: float, mu: float, c: int, n: int) -> float:
    arr = np.cumsum(rng.exponential(1.0 / lam, n))
    serv = rng.exponential(1.0 / mu, n)
    free = [0.0] * c
    soj = np.empty(n)
    for i in range(n):
        start = max(arr[i], heapq.heappop(free))
        heapq.heappush(free, start + serv[i])
        soj[i] = start + serv[i] - arr[i]
    return float(soj[n // 20 :].mean())


# --------------------------------------------------------------------------- single server


def test_mm1_hand_values() -> None:
    r = q.mm1(0.5, 1.0)
    assert r.rho == pytest.approx(0.5)
    assert r.wait_s == pytest.approx(1.0)  # ρ/(μ−λ)
    assert r.sojourn_s == pytest.approx(2.0)  # 1/(μ−λ)
    assert r.queue_len == pytest.approx(0.5)  # ρ²/(1−ρ)
    assert r.system_len == pytest.approx(1.0)  # ρ/(1−ρ)


def test_md1_is_half_mm1_wait() -> None:
    for lam in (0.1, 0.5, 0.9):
        assert q.md1(lam, 1.0).wait_s == pytest.approx(0.5 * q.mm1(lam, 1.0).wait_s)
    assert q.md1(0.9, 1.0).wait_s == pytest.approx(4.5)


def test_mg1_with_exponential_moments_equals_mm1() -> None:
    mu = 2.5
    assert vars_(q.mg1(1.7, 1 / mu, 2 / mu**2)) == pytest.approx(vars_(q.mm1(1.7, mu)))


def vars_(r: q.QueueResult) -> tuple[float, ...]:
    return (r.rho, r.wait_s, r.sojourn_s, r.queue_len, r.system_len)


def test_mg1_from_sample_uses_empirical_moments() -> None:
    s = np.array([1.0, 2.0, 3.0])
    assert q.mg1_from_sample(0.2, s) == q.mg1(0.2, 2.0, 14.0 / 3.0)
    q.mg1_from_sample(0.5, np.full(10, 1.0))  # zero variance up to rounding is accepted


def test_mg1_validation() -> None:
    with pytest.raises(ValueError, match="lam"):
        q.mg1(0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="es"):
        q.mg1(0.5, -1.0, 1.0)
    with pytest.raises(ValueError, match="variance"):
        q.mg1(0.5, 1.0, 0.5)
    with pytest.raises(ValueError):
        q.mg1_from_sample(0.5, [])


def test_unstable_error_message_and_type() -> None:
    with pytest.raises(q.UnstableError, match="rho = 1 >= 1"):
        q.mg1(1.0, 1.0, 1.0)  # exactly at capacity
    with pytest.raises(q.UnstableError, match=r"unstable: rho = 1\.05 >= 1 \(lambda=1\.05, E\[S\]=1\)") as e:
        q.mm1(1.05, 1.0)
    assert isinstance(e.value, ValueError)
    assert e.value.rho == pytest.approx(1.05)


# --------------------------------------------------------------------------- multi-server


def test_erlang_c_hand_values() -> None:
    assert q.erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = ρ
    assert q.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert q.erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert q.erlang_c(5, 0.0) == 0.0


def test_mmc_with_one_server_is_mm1() -> None:
    assert vars_(q.mmc(0.6, 1.0, 1)) == pytest.approx(vars_(q.mm1(0.6, 1.0)))


def test_allen_cunneen_exact_cases() -> None:
    # cs² = 1 reproduces the exact M/M/c; c = 1 reproduces Pollaczek–Khinchine.
    assert vars_(q.mgc_allen_cunneen(2.0, 1.0, 1.0, 3)) == pytest.approx(vars_(q.mmc(2.0, 1.0, 3)))
    es, cs2 = 0.8, 2.5
    pk = q.mg1(1.0, es, es * es * (1 + cs2))
    assert vars_(q.mgc_allen_cunneen(1.0, es, cs2, 1)) == pytest.approx(vars_(pk))
    assert vars_(q.kingman_gg1(1.0, es, 1.0, cs2)) == pytest.approx(vars_(pk))
    assert vars_(q.ggc_allen_cunneen(1.0, es, 1.0, cs2, 2)) == pytest.approx(
        vars_(q.mgc_allen_cunneen(1.0, es, cs2, 2))
    )


def test_multi_validation() -> None:
    with pytest.raises(ValueError, match="servers"):
        q.erlang_c(0, 0.5)
    with pytest.raises(ValueError, match="servers"):
        q.mmc(1.0, 1.0, 2.5)  # type: ignore[arg-type]  # a non-integer server count is the point


def test_mc_mmc() -> None:
    rng = np.random.default_rng(4)
    theory = q.mmc(2.0, 1.0, 3).sojourn_s
    sim = mc_mmc_sojourn(rng, 2.0, 1.0, 3, N_MC)
    assert sim == pytest.approx(theory, rel=0.03)


# --------------------------------------------------------------------------- clipping


def test_clipped_moments_small_pmf() -> None:
    pmf = ([10, 20, 30, 40], [0.1, 0.2, 0.3, 0.4])
    es, es2, frac = q.clipped_moments(pmf, 0.1, 1.0, 25)
    n = np.array([10, 20, 25, 25])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert frac == pytest.approx(0.7)
    assert es == pytest.approx(1.0 + 0.1 * (n @ p))
    assert es2 == pytest.approx(((1.0 + 0.1 * n) ** 2) @ p)
    assert q.clipped_moments(pmf, 0.1, 1.0, 30).frac_clipped == pytest.approx(0.4)
    assert q.clipped_moments(pmf, 0.1, 1.0, 40).frac_clipped == 0.0


def test_sample_and_pmf_agree() -> None:
    sample = [10, 20, 20, 40]
    assert q.clipped_moments(sample, 0.05, 0.2, 30) == pytest.approx(
        q.clipped_moments(([10, 20, 40], [0.25, 0.5, 0.25]), 0.05, 0.2, 30)
    )
    with pytest.raises(ValueError, match="sum"):
        q.token_pmf(([1, 2], [0.5, 0.6]))


def test_no_clipping_equals_unclipped_mg1() -> None:
    values, probs = np.array([5.0, 50.0, 500.0]), np.array([0.5, 0.4, 0.1])
    a, c, lam = 0.02, 0.1, 0.5
    s = c + a * values
    base = q.mg1(lam, float(s @ probs), float((s * s) @ probs))
    for n_max in (500, 501, 10_000, None):
        r = q.mean_delay(lam, (values, probs), a, c, n_max)
        assert r.frac_clipped == 0.0
        assert (r.rho, r.wait_s, r.sojourn_s) == pytest.approx((base.rho, base.wait_s, base.sojourn_s))


def test_paper_setting_has_interior_optimum() -> None:
    """PAPERS.md: λ = 1/40 req/s, a ≈ 0.0225 s/token, c ≈ 0 → best n_max ≈ 1600 (heavy-tailed lengths)."""
    pmf = lognormal_pmf(7.0, 0.7)
    lam, a = 1 / 40, 0.0225
    best = q.optimal_n_max(lam, pmf, a, 0.0)
    assert 1400 <= best.n_max <= 1800
    assert 0.0 < best.frac_clipped < 0.5
    assert best.mean_wait_s == pytest.approx(q.mean_delay(lam, pmf, a, 0.0, best.n_max).wait_s)

    # interior: the objective is worse at much smaller and at much larger caps
    def j(n: float) -> float:
        penalty = q.DEFAULT_CLIP_PENALTY_S * q.clipped_moments(pmf, a, 0.0, n).frac_clipped
        return q.mean_delay(lam, pmf, a, 0.0, n).wait_s + penalty

    jb = j(best.n_max)
    assert jb < j(400) and jb < j(3000) and jb < j(60_000)
    # the reported delays around the optimum: ~22 s at 1600 vs ~55 s at 3000
    assert q.mean_delay(lam, pmf, a, 0.0, 1600).wait_s == pytest.approx(22.3, abs=0.2)
    assert q.mean_delay(lam, pmf, a, 0.0, 3000).wait_s == pytest.approx(55.4, abs=0.2)
    # a per-lost-token price also gives an interior optimum
    tok = q.optimal_n_max(lam, pmf, a, 0.0, penalty_per_clipped_s=0.0, penalty_per_lost_token_s=0.08)
    assert 1000 < tok.n_max < 3000
    # without any price for clipping, the smallest candidate wins (delay is monotone in n_max)
    none = q.optimal_n_max(lam, pmf, a, 0.0, candidates=[200, 800, 1600, 5000], penalty_per_clipped_s=0.0)
    assert none.n_max == 200


def test_optimal_n_max_from_sample_and_unstable() -> None:
    rng = np.random.default_rng(1)
    sample = np.ceil(rng.lognormal(7.0, 0.7, 20_000))
    best = q.optimal_n_max(1 / 40, sample, 0.0225, 0.0)
    assert 1300 <= best.n_max <= 1900
    with pytest.raises(q.UnstableError):
        q.optimal_n_max(10.0, sample, 0.0225, 0.0, candidates=[1000, 2000])


def test_impatient_wait() -> None:
    assert q.impatient_wait(60.0, 0.2, 30.0) == pytest.approx(36.0)
    assert q.impatient_wait(60.0, 0.0, 12.0) == pytest.approx(12.0)
    with pytest.raises(ValueError):
        q.impatient_wait(60.0, 1.5, 10.0)
    with pytest.raises(ValueError, match="patience"):
        q.impatient_wait(10.0, 0.1, 20.0)


def test_mc_clipped_mg1() -> None:
    rng = np.random.default_rng(5)
    a, c, n_max = 0.01, 0.05, 600
    lengths = np.ceil(rng.lognormal(5.0, 1.0, N_MC))  # the pmf the theory uses
    theory_es = q.clipped_moments(lengths, a, c, n_max).es
    lam = 0.4 / theory_es
    theory = q.mean_delay(lam, lengths, a, c, n_max).wait_s
    serv = c + a * np.minimum(np.ceil(rng.lognormal(5.0, 1.0, N_MC)), n_max)  # fresh draws
    assert mc_mg1_wait(rng, lam, serv) == pytest.approx(theory, rel=0.05)


def test_mc_mg1_lindley() -> None:
    rng = np.random.default_rng(0)
    serv = rng.gamma(0.5, 2.0, N_MC)  # E[S] = 1, Var = 2, E[S²] = 3
    assert mc_mg1_wait(rng, 0.5, serv) == pytest.approx(q.mg1(0.5, 1.0, 3.0).wait_s, rel=0.05)


# --------------------------------------------------------------------------- batching


def test_dynamic_batching_special_cases() -> None:
    # b_max = 1 is M/D/1 with D = α + τ0
    r = q.dynamic_batching_mean_wait(0.9, 0.5, 0.5, b_max=1)
    assert r.wait_s == pytest.approx(q.md1(0.9, 1.0).wait_s)
    assert r.utilization == pytest.approx(0.9)
    # unlimited: Inoue's E[W] = (E[B²] − E[B])/(2λE[B]) + E[H]; the pgf solution agrees with the chain
    lam, alpha, tau0 = 1.0, 0.9, 0.1
    r = q.dynamic_batching_mean_wait(lam, alpha, tau0)
    assert r.wait_s == pytest.approx((r.batch_m2 - r.mean_batch) / (2 * lam * r.mean_batch), rel=1e-9)
    _, eb, eb2 = _unbounded_moments(lam, alpha, tau0)
    assert (r.mean_batch, r.batch_m2) == pytest.approx((eb, eb2), rel=1e-9)
    assert r.sojourn_s == pytest.approx(r.wait_s + (alpha * eb2 + tau0 * eb) / eb, rel=1e-9)
    # elastic batching is dynamic batching without a cap in this model
    e = q.elastic_batching_mean_wait(lam, alpha, tau0)
    assert (e.wait_s, e.sojourn_s) == pytest.approx((r.wait_s, r.sojourn_s))
    # near saturation the chain would be huge: the exact pgf path answers without the pmf
    big = q.dynamic_batching_mean_wait(1.0, 0.999, 0.5)
    assert big.batch_probs.size == 0 and big.sojourn_s <= q.dynamic_batching_bound(1.0, 0.999, 0.5) * (1 + 1e-9)


@pytest.mark.parametrize(
    ("lam", "alpha", "tau0", "b_max"), [(0.5, 0.5, 1.0, None), (2.0, 0.1, 1.0, 4), (5.0, 0.1, 0.3, None)]
)
def test_batch_size_distribution(lam: float, alpha: float, tau0: float, b_max: int | None) -> None:
    r = q.dynamic_batching_mean_wait(lam, alpha, tau0, b_max)
    assert r.batch_probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(r.batch_probs >= 0.0)
    assert r.batch_sizes @ r.batch_probs == pytest.approx(r.mean_batch)
    assert (r.batch_sizes**2) @ r.batch_probs == pytest.approx(r.batch_m2)
    if b_max is not None:
        assert r.batch_sizes.max() <= b_max


def test_inoue_bound_grid_and_branch() -> None:
    for lam in (0.1, 0.5, 1.0, 2.0, 4.0):
        for alpha in (0.01, 0.1, 0.2):
            for tau0 in (0.0, 0.05, 0.5, 2.0):
                if lam * alpha >= 0.95:
                    continue
                r = q.dynamic_batching_mean_wait(lam, alpha, tau0)
                bound = q.dynamic_batching_bound(lam, alpha, tau0)
                assert r.sojourn_s <= bound * (1 + 1e-9), (lam, alpha, tau0)
                la = lam * alpha
                phi0 = (alpha + tau0) / (2 * (1 - la)) * (1 + 2 * lam * tau0 + (1 - lam * tau0) / (1 + la))
                if lam <= 1 / (alpha + tau0):  # φ0 ≤ φ1 there
                    assert bound == pytest.approx(phi0)
    with pytest.raises(ValueError, match="unlimited"):
        q.dynamic_batching_bound(1.0, 0.1, 0.1, b_max=8)


def test_fixed_batching() -> None:
    # b = 1 is M/D/1 (Spitzer's series must reproduce Pollaczek–Khinchine)
    for lam in (0.3, 0.9):
        f = q.fixed_batching_mean_wait(lam, 0.25, 0.75, 1)
        assert f.formation_s == 0.0
        assert f.wait_s == pytest.approx(q.md1(lam, 1.0).wait_s, rel=1e-9)
    f = q.fixed_batching_mean_wait(2.0, 0.2, 0.5, 4)
    assert f.formation_s == pytest.approx(3 / 4)  # (b − 1)/(2λ)
    assert f.rho == pytest.approx(2.0 * 1.3 / 4)
    assert f.sojourn_s == pytest.approx(f.wait_s + 1.3)
    with pytest.raises(ValueError):
        q.fixed_batching_mean_wait(1.0, 0.1, 0.1, 0)


def test_mc_dynamic_batching_unlimited() -> None:
    rng = np.random.default_rng(2)
    r = q.dynamic_batching_mean_wait(2.0, 0.3, 0.5)
    wait, soj = mc_dynamic(rng, 2.0, 0.3, 0.5, N_MC)
    assert wait == pytest.approx(r.wait_s, rel=0.03)
    assert soj == pytest.approx(r.sojourn_s, rel=0.03)


def test_mc_dynamic_batching_capped() -> None:
    rng = np.random.default_rng(3)
    r = q.dynamic_batching_mean_wait(1.5, 0.3, 0.5, b_max=4)
    wait, soj = mc_dynamic(rng, 1.5, 0.3, 0.5, N_MC, b_max=4)
    assert wait == pytest.approx(r.wait_s, rel=0.03)
    assert soj == pytest.approx(r.sojourn_s, rel=0.03)


def test_mc_fixed_batching() -> None:
    rng = np.random.default_rng(6)
    f = q.fixed_batching_mean_wait(2.0, 0.2, 0.5, 4)
    assert mc_fixed(rng, 2.0, 0.2, 0.5, 4, N_MC) == pytest.approx(f.wait_s, rel=0.03)


# --------------------------------------------------------------------------- properties

rates = st.floats(0.01, 0.98)
svc = st.floats(0.05, 5.0)
scv = st.floats(0.0, 4.0)


@settings(max_examples=60)
@given(u1=rates, u2=rates, es=svc, cs2=scv, c=st.integers(1, 8))
def test_single_and_multi_monotone_in_lambda(u1: float, u2: float, es: float, cs2: float, c: int) -> None:
    lo, hi = sorted((u1, u2))
    assume(hi - lo > 1e-6)
    es2 = es * es * (1 + cs2)
    pairs = [
        (q.mg1(lo / es, es, es2), q.mg1(hi / es, es, es2)),
        (q.md1(lo / es, es), q.md1(hi / es, es)),
        (q.mm1(lo / es, 1 / es), q.mm1(hi / es, 1 / es)),
        (q.kingman_gg1(lo / es, es, 0.5, cs2), q.kingman_gg1(hi / es, es, 0.5, cs2)),
        (q.mgc_allen_cunneen(c * lo / es, es, cs2, c), q.mgc_allen_cunneen(c * hi / es, es, cs2, c)),
        (q.mmc(c * lo / es, 1 / es, c), q.mmc(c * hi / es, 1 / es, c)),
    ]
    for a, b in pairs:
        assert b.wait_s >= a.wait_s and b.sojourn_s >= a.sojourn_s and b.system_len > a.system_len
    assert q.erlang_c(c, c * hi) >= q.erlang_c(c, c * lo)


@settings(max_examples=60)
@given(rho=st.floats(1.0001, 50.0), es=svc, cs2=scv, c=st.integers(1, 8))
def test_overload_raises_unstable(rho: float, es: float, cs2: float, c: int) -> None:
    lam = rho / es
    es2 = es * es * (1 + cs2)
    calls = [
        lambda: q.mg1(lam, es, es2),
        lambda: q.md1(lam, es),
        lambda: q.mm1(lam, 1 / es),
        lambda: q.kingman_gg1(lam, es, 1.0, cs2),
        lambda: q.mgc_allen_cunneen(c * lam, es, cs2, c),
        lambda: q.mmc(c * lam, 1 / es, c),
        lambda: q.erlang_c(c, c * rho),
        lambda: q.mean_delay(lam, [1.0], es, 0.0, None),
        lambda: q.dynamic_batching_mean_wait(lam, es, 0.1),
        lambda: q.dynamic_batching_bound(lam, es, 0.1),
        lambda: q.fixed_batching_mean_wait(lam, es, 0.0, c),
    ]
    for call in calls:
        with pytest.raises(q.UnstableError, match="unstable: rho"):
            call()


pmfs = token_pmfs(4000, 12)


@settings(max_examples=60)
@given(pmf=pmfs, n1=st.integers(1, 4500), n2=st.integers(1, 4500), load=st.floats(0.05, 0.95))
def test_clipping_wait_monotone_in_n_max(pmf: list[tuple[int, float]], n1: int, n2: int, load: float) -> None:
    values = np.array([v for v, _ in pmf], dtype=float)
    probs = np.array([p for _, p in pmf])
    probs /= probs.sum()
    a, c = 0.01, 0.2
    lam = load / (c + a * float(values @ probs))  # stable even unclipped
    lo, hi = sorted((n1, n2))
    w_lo = q.mean_delay(lam, (values, probs), a, c, lo)
    w_hi = q.mean_delay(lam, (values, probs), a, c, hi)
    assert w_hi.wait_s >= w_lo.wait_s * (1 - 1e-12)
    assert w_hi.frac_clipped <= w_lo.frac_clipped
    # and monotone in λ at a fixed cap
    w_more = q.mean_delay(lam * 1.02, (values, probs), a, c, lo) if load * 1.02 < 1 else w_lo
    assert w_more.wait_s >= w_lo.wait_s


@settings(max_examples=25)
@given(
    u1=st.floats(0.02, 0.9),
    u2=st.floats(0.02, 0.9),
    alpha=st.floats(0.01, 1.0),
    tau0=st.floats(0.0, 2.0),
    b_max=st.sampled_from([None, None, 2, 8]),
)
def test_batching_monotone_in_lambda(u1: float, u2: float, alpha: float, tau0: float, b_max: int | None) -> None:
    lo, hi = sorted((u1, u2))
    assume(hi - lo > 1e-3)
    per_req = alpha + (0.0 if b_max is None else tau0 / b_max)  # load = λ·per_req
    a = q.dynamic_batching_mean_wait(lo / per_req, alpha, tau0, b_max)
    b = q.dynamic_batching_mean_wait(hi / per_req, alpha, tau0, b_max)
    assert b.sojourn_s >= a.sojourn_s * (1 - 1e-9)
    assert b.wait_s >= a.wait_s * (1 - 1e-9) - 1e-12
    assert b.mean_batch >= a.mean_batch * (1 - 1e-9)
    if b_max is None:
        assert q.dynamic_batching_bound(hi / alpha, alpha, tau0) >= q.dynamic_batching_bound(lo / alpha, alpha, tau0)
        assert a.sojourn_s <= q.dynamic_batching_bound(lo / alpha, alpha, tau0) * (1 + 1e-9)
    # fixed batching: the queue of full batches grows with λ (the formation wait (b−1)/(2λ) shrinks)
    bb = 4
    d = tau0 + alpha * bb
    f_lo = q.fixed_batching_mean_wait(lo * bb / d, alpha, tau0, bb)
    f_hi = q.fixed_batching_mean_wait(hi * bb / d, alpha, tau0, bb)
    assert f_hi.batch_wait_s >= f_lo.batch_wait_s * (1 - 1e-9)

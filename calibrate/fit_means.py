"""`calibrate fit-run` on means-only runs (one mean TTFT and TPOT per closed loop): the linearised fit of
`calibrate.fit_linear`, with the free terms chosen by leave-one-out over the runs.

Why a second method beside `calibrate.fit_run`'s search: a means-only run gives three numbers, so the search's
24 evaluations of every run spent most of a silicon cross-fit's CPU time and put terms where the fitted rows, not
the others, wanted them; the linearised fit replays each run 1 + (terms) times on a shortened load, chooses how
many terms to free by leave-one-out and keeps the preset where the replayed fit does not improve the fitted runs
(benchmarks/VALIDATION.md, "Silicon cross-fit per engine and GPU (branch s11-fit)": held-out TPOT / E2E 18.8 / 19.7
-> 14.5 / 14.9 % over 82 rows, against session 10's search on 9 groups 22.1 / 20.4 -> 19.9 / 19.1 %). Per-request
logs keep the search: one run is one row for a linearisation of its means, and leave-one-out needs two or more.
The benchmark (`benchmarks/validation_silicon_fit.py`) and the CLI both fit through `fit_means`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from calibrate import fit_linear as fl
from calibrate.fit_run import FitResult, Param, fittable_paths, get_path, informed
from calibrate.observed import ObservedRun
from calibrate.replay import compare, replay_once, scenario_data
from sim.config.scenario import Scenario, load_scenario
from sim.errors import ServesimError

# (path, log coordinates, bounds where the schema gives none): scales move in log, times additively
# (calibrate/fit_linear.py). `cost_model.layer_overhead_s`: fixed GPU time per layer per step (kernel floors and
# launch gaps inside CUDA graphs; issue 12: "per-layer launch and synchronisation costs that do not shrink with TP",
# "decode at batch 1 misses a ~15 us floor"), the TPOT intercept at small batch that vLLM V1's async scheduling
# cannot hide (`scheduler_s` is charged there only beyond the GPU's step, so its slope is 0 at the presets); bounds
# 0-100 us per layer (validation.py's FALLBACK_PARAMS allow 200 us; 100 us x 60 layers is already 6 ms a step).
TERMS: tuple[tuple[str, bool, tuple[float, float] | None], ...] = (
    ("serving_engine.memory_efficiency_scale", True, None),
    ("cost_model.layer_overhead_s", False, (0.0, 1e-4)),
    ("serving_engine.compute_efficiency_scale", True, None),
    ("serving_engine.frontend_s", False, None),
)
# terms that mainly move TTFT (prefill FLOP/s; per-request time): where one is freed, the guard checks TTFT too
TTFT_TERMS = ("serving_engine.compute_efficiency_scale", "serving_engine.frontend_s")
LADDER = ([0], [0, 1], [0, 1, 2], [0, 1, 2, 3])  # indices into the runs' terms (those the runs inform)
PROBE_REQUESTS = 3  # requests per client in a slope replay (the InferenceX load sends 10)


def short(run: ObservedRun, n: int) -> ObservedRun:
    """The run's first n requests (a slope replay's shorter closed loop)."""
    if n >= len(run):
        return run
    return ObservedRun(
        run.source, run.fmt, run.prompt_tokens[:n], run.output_tokens[:n], run.ttft_s[:n], run.e2e_s[:n],
        concurrency=run.concurrency, means_only=run.means_only, meta=run.meta,
    )  # fmt: skip


REPLAYING: dict[str, str] = {}  # the replay in flight (a capped fit names it)


def replay_cmp(run: ObservedRun, sc: Scenario) -> tuple[np.ndarray, dict[str, Any]]:
    """log of the replayed mean TTFT, TPOT and E2E (nan where nothing finished), and the full comparison."""
    REPLAYING["now"] = f"{run.source}, {len(run)} requests, {run.concurrency} clients"
    c = compare(run, replay_once(run, sc))
    v = np.array([c[m]["mean"]["simulated_s"] for m in fl.METRICS], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.log(v), np.nan), c


def measured(run: ObservedRun) -> np.ndarray:
    return np.log(np.array([np.nanmean(run.ttft_s), np.nanmean(run.tpot_s), np.nanmean(run.e2e_s)]))


def at(sc: Scenario, terms: list[fl.Term], moves: np.ndarray) -> Scenario:
    """The scenario with every term moved by `moves` (widths) from its preset."""
    sets = [f"{t.path}={t.value(float(m))!r}" for t, m in zip(terms, moves, strict=True) if m != 0.0]
    return load_scenario(sc, sets) if sets else sc


def terms_for(
    pairs: list[tuple[ObservedRun, Scenario]],
    explicit: list[tuple[str, float, float]] | None = None,
    outside: list[str] | None = None,
) -> list[fl.Term]:
    """TERMS the runs inform (`calibrate.fit_run.informed`) and their scenario has, with the schema's bounds (or
    TERMS' own) and the scenario's values; or the `explicit` (path, lo, hi), a `*_scale` moved in log. A term whose
    scenario value lies outside its bounds is not fitted (clamping it would change the user's model even where the
    fit keeps the preset); it is appended to `outside` as `path=value (lo..hi)`."""
    data = scenario_data(pairs[0][1])
    spec: list[tuple[str, bool, tuple[float, float] | None, bool]]
    if explicit:
        spec = [(p, p.endswith("_scale") and lo > 0, (lo, hi), True) for p, lo, hi in explicit]
    else:
        bounds = {p: (lo, hi) for p, lo, hi in fittable_paths(pairs[0][1])}
        spec = [(p, log, bounds.get(p, own), False) for p, log, own in TERMS]
    out = []
    for path, log, lims, named in spec:
        try:
            x0 = get_path(data, path)
        except ServesimError:
            if named:
                raise
            continue  # e.g. a cost model without that field
        if lims is None or not (named or informed(path, pairs)):
            continue
        lo, hi = lims
        if not lo <= float(x0) <= hi:
            if outside is not None:
                outside.append(f"{path}={float(x0):g} ({lo:g}..{hi:g})")
            continue
        out.append(fl.Term(path, lo, hi, float(x0), log, ttft=path in TTFT_TERMS))
    return out


def fit_means(
    pairs: list[tuple[ObservedRun, Scenario]],
    explicit: list[tuple[str, float, float]] | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Slopes of every run (`PROBE_REQUESTS` per client), the term set by leave-one-out (`fit_linear.choose`; the
    empty set, the preset, is a candidate), chord replays, the guard (`fit_linear.fit`). The result's `diagnosis`
    holds the leave-one-out scores, the chosen terms, the guarded metrics and every replayed point."""
    t0 = time.perf_counter()
    if len(pairs) < 2:  # fit_linear.choose frees no term on one row: the fit would keep the preset silently
        file = pairs[0][0].source.rsplit(":", 1)[0] if pairs else "--observed"
        raise ServesimError(f"{file}: a means CSV needs at least 2 lines (leave-one-out chooses the terms)")
    outside: list[str] = []
    terms = terms_for(pairs, explicit, outside)
    if not terms:
        why = f" (outside their bounds, not fitted: {', '.join(outside)})" if outside else ""
        raise ServesimError(f"nothing to fit: no free term these runs inform{why}; name some with --param path=lo:hi")
    count = [0]

    def rep(run: ObservedRun, sc: Scenario) -> tuple[np.ndarray, dict[str, Any]]:
        count[0] += 1
        return replay_cmp(run, sc)

    meas = [measured(r) for r, _ in pairs]
    first = [rep(r, sc) for r, sc in pairs]
    base = [b for b, _ in first]

    def probe(i: int, moves: np.ndarray, _probe: bool) -> np.ndarray:
        run, sc = pairs[i]
        return rep(short(run, PROBE_REQUESTS * (run.concurrency or 1)), at(sc, terms, moves))[0]

    rows = fl.linearise(terms, meas, probe, base)
    ladder = [[i for i in s if i < len(terms)] for s in LADDER] if not explicit else [list(range(len(terms)))]
    ladder = [s for k, s in enumerate(ladder) if s and s not in ladder[:k]]
    active, scores = fl.choose(rows, terms, ladder)
    cmps: dict[tuple[float, ...], list[dict[str, Any]]] = {}

    def replay_all(m: np.ndarray) -> list[np.ndarray]:
        out = [rep(r, at(sc, terms, m)) for r, sc in pairs]
        cmps[tuple(m.tolist())] = [c for _, c in out]
        return [lg for lg, _ in out]

    moves, after_logs, reasons, bound, points = fl.fit(rows, terms, active, replay_all)
    if not active:
        reasons = ["no term chosen"]
    if log is not None:
        log(f"leave-one-out scores: {scores}; chosen: {[terms[i].path for i in active]}")
    before = [c for _, c in first]
    after = before if after_logs is None else cmps[tuple(moves.tolist())]
    params = [Param(t.path, t.lo, t.hi, t.x0) for t in terms]
    cost_before = fl.loss(meas, base)  # the linearised fit has no prior: the cost is the runs' loss
    cost_after = cost_before if after_logs is None else fl.loss(meas, after_logs)
    return FitResult(
        params,
        _values(terms, moves),
        before,
        after,
        count[0],
        time.perf_counter() - t0,
        at_bounds=bound,
        cost_before=cost_before,
        cost_after=cost_after,
        diagnosis={
            "method": "linearised (calibrate.fit_means)",
            "moves": moves.tolist(),
            "loo": {k: (v if math.isfinite(v) else None) for k, v in scores.items()},
            "chosen": [terms[i].path for i in active],
            "outside_bounds": outside,
            "guarded": list(fl.guarded(terms, active)),
            "points": [{"values": _values(terms, m), "loss": fl.loss(meas, lg)} for m, lg in points],
        },
        prior=fl.PRIOR,
        runs_cost_before=cost_before,
        runs_cost_after=cost_after,
        kept_preset=reasons,
    )


def _values(terms: list[fl.Term], moves: np.ndarray) -> dict[str, float]:
    """Every term's value: the scenario's own (not a round trip through log coordinates) where the fit left it."""
    return {t.path: t.value(float(x)) if x != 0.0 else t.x0 for t, x in zip(terms, moves, strict=True)}

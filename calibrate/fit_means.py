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
from dataclasses import dataclass, field
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


# Other readings of the runs' scenarios that leave-one-out may choose beside the scenario's own, each a structural
# choice of the engine, not a scale: (path, value). `moe_grouped_gemm=one_launch`: the routed experts as one
# grouped kernel streaming every active expert's weights (sim/costmodel/structured.py, the note above
# `StructuredCost`), as vLLM's `fused_moe_kernel` (one Triton launch per GEMM over all experts' token blocks,
# vllm/model_executor/layers/fused_moe/fused_moe.py), SGLang's fork of it (python/sglang/srt/layers/moe/
# fused_moe_triton) and TensorRT-LLM's grouped CUTLASS / TRTLLM-Gen MoE run them. The presets price `per_expert`
# (each expert's GEMM at its own small-matrix efficiency), whose decode step grows with the batch faster than the
# silicon rows' TPOT on MoE models (VALIDATION.md, branch s13-fit); `one_launch` was rejected as a preset because
# it misses a fixed time per MoE call at small batches (COVERAGE.md, s12-tpot2: 18-46 us in vLLM PR #24700's
# kernel times), which here is the fitted per-layer time `cost_model.layer_overhead_s`.
READINGS: tuple[tuple[str, str], ...] = (("serving_engine.moe_grouped_gemm", "one_launch"),)
# the terms a reading is fitted with (nested ladder): the decode level and the fixed time per layer per step
READING_LADDER = ("serving_engine.memory_efficiency_scale", "cost_model.layer_overhead_s")
# The reading's TTFT side: the terms freed beside a reading's chosen set where the guard rejected it (`_ttft_retry`).
# The reading prices prompt steps too (one launch: cheaper), so the guard checks TTFT (`fit_linear.guarded`); on the
# silicon rows TTFT's own miss is a per-request time and the prefill rate (COVERAGE.md, s13-ttft; the presets' TTFT
# is 30-70 % low on most SGLang / TensorRT-LLM rows), which the reading's ladder leaves fixed, so the guard refused
# the reading in 11 of the 55 subgroups that offered it on TTFT alone and its TPOT never reached the held-out rows
# (VALIDATION.md, branch s14-fit). Leave-one-out scores TPOT and E2E, which these terms barely move, so they are not
# rungs of the ladder (the tie would never free them); they are freed only with a rejected reading, and the guard
# (TTFT included) and the bound rule still decide.
READING_TTFT = TTFT_TERMS


@dataclass
class Problem:
    """The runs under one reading of their scenarios (`reading` None: as given), linearised in `terms`."""

    reading: tuple[str, str] | None
    pairs: list[tuple[ObservedRun, Scenario]]
    terms: list[fl.Term]
    first: list[tuple[np.ndarray, dict[str, Any]]]  # the full replays at the reading's preset: logs, comparison
    ladder: list[list[int]]
    rows: list[fl.Linearised] = field(default_factory=list)

    def label(self, active: list[int]) -> str:
        names = [self.terms[i].path.rsplit(".", 1)[-1] for i in active]
        head = [] if self.reading is None else [f"{self.reading[0].rsplit('.', 1)[-1]}={self.reading[1]}"]
        return "+".join(head + names)


def choose_reading(problems: list[Problem], tie: float = fl.LOO_TIE) -> tuple[int, list[int], dict[str, float]]:
    """The problem and term set with the best leave-one-out score, the simplest within `tie` of it (a reading
    counts as one term; at equal size the scenario's own reading first): `fit_linear.choose` across readings."""
    cands = [
        (len(s) + (p.reading is not None), k, s)
        for k, p in enumerate(problems)
        for s in ([], *p.ladder)
        if fl.identifiable(p.rows, p.terms, s) == list(s)  # a set the rows cannot tell apart is no candidate
    ]
    n = len(problems[0].rows)
    scores = [fl.loo(problems[k].rows, problems[k].terms, s) if n > 1 else math.inf for _, k, s in cands]
    names = {problems[k].label(s): v for (_, k, s), v in zip(cands, scores, strict=True)}
    if n < 2:
        return 0, [], names
    best = min(scores)
    j = min((c[0], c[1], j) for j, c in enumerate(cands) if scores[j] <= best + tie)[2]
    return cands[j][1], list(cands[j][2]), names


def fit_means(
    pairs: list[tuple[ObservedRun, Scenario]],
    explicit: list[tuple[str, float, float]] | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Slopes of every run (`PROBE_REQUESTS` per client) under the scenario's reading and each of `READINGS` that
    changes the runs, the reading and term set by leave-one-out (`choose_reading`; the preset is a candidate), chord
    replays, the guard against the preset (`fit_linear.fit`); a refused reading is retried with every one of its terms
    before the scenario's own reading's choice (`_fit_chosen`). The result's `diagnosis` holds the leave-one-out
    scores, the reading and terms chosen, the guarded metrics and every replayed point."""
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
    ladder = [[i for i in s if i < len(terms)] for s in LADDER] if not explicit else [list(range(len(terms)))]
    ladder = [s for k, s in enumerate(ladder) if s and s not in ladder[:k]]
    problems = [Problem(None, pairs, terms, [rep(r, sc) for r, sc in pairs], ladder)]
    problems += [] if explicit else _readings(pairs, terms, problems[0].first, rep)
    for p in problems:
        p.rows = fl.linearise(p.terms, meas, _prober(p, rep), [b for b, _ in p.first])
    k, active, scores = choose_reading(problems)
    base = [b for b, _ in problems[0].first]
    p, active, (moves, after_logs, reasons, bound, points, cmps), rejected, ttft_retry = _fit_chosen(
        problems, k, active, base, meas, rep
    )
    if not active and p.reading is None:
        reasons = ["no term chosen"]
    if log is not None:
        log(f"leave-one-out scores: {scores}; chosen: {p.label(active) or 'the preset'}")
    before = [c for _, c in problems[0].first]
    after = before if after_logs is None else cmps[tuple(moves.tolist())]
    cost_before = fl.loss(meas, base)  # the linearised fit has no prior: the cost is the runs' loss
    cost_after = cost_before if after_logs is None else fl.loss(meas, after_logs)
    used = p.reading is not None and after_logs is not None
    return FitResult(
        [Param(t.path, t.lo, t.hi, t.x0) for t in terms],
        _values(terms, p.terms, moves),
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
            "chosen": ([p.reading[0]] if p.reading else []) + [p.terms[i].path for i in active],
            "reading": {p.reading[0]: p.reading[1]} if used and p.reading else {},
            "readings_tried": [q.label([]) for q in problems[1:]],
            "reading_rejected": rejected,
            "ttft_retry": ttft_retry,
            "outside_bounds": outside,
            "guarded": list(fl.guarded(p.terms, active, p.reading is not None)),
            "points": points,
        },
        prior=fl.PRIOR,
        runs_cost_before=cost_before,
        runs_cost_after=cost_after,
        kept_preset=reasons,
    )


def _fit_problem(
    p: Problem,
    active: list[int],
    base: list[np.ndarray],
    meas: list[np.ndarray],
    rep: Callable[..., tuple[np.ndarray, dict[str, Any]]],
) -> tuple[np.ndarray, list[np.ndarray] | None, list[str], list[str], list[dict[str, Any]], dict[Any, Any]]:
    """`fit_linear.fit` of problem `p`'s `active` terms, guarded against the preset's logs `base` where `p` is another
    reading: moves, logs (None: the preset), reasons, terms kept on a bound, every replayed point (values over
    `p.terms`, loss) and the comparisons replayed, by moves."""
    cmps: dict[tuple[float, ...], list[dict[str, Any]]] = {tuple([0.0] * len(p.terms)): [c for _, c in p.first]}

    def replay_all(m: np.ndarray) -> list[np.ndarray]:
        out = [rep(r, at(sc, p.terms, m)) for r, sc in p.pairs]
        cmps[tuple(m.tolist())] = [c for _, c in out]
        return [lg for lg, _ in out]

    ref = None if p.reading is None else base
    moves, logs, reasons, bound, every = fl.fit(p.rows, p.terms, active, replay_all, reference=ref)
    terms = p.terms
    label = p.label([]) or None
    points = [{"values": _values(terms, terms, m), "reading": label, "loss": fl.loss(meas, lg)} for m, lg in every]
    return moves, logs, reasons, bound, points, cmps


def _prober(p: Problem, rep: Callable[..., tuple[np.ndarray, dict[str, Any]]]) -> Callable[..., np.ndarray]:
    """A slope replay of problem `p`'s i-th run at `moves`: its first `PROBE_REQUESTS` x clients requests."""

    def probe(i: int, moves: np.ndarray, _probe: bool) -> np.ndarray:
        run, sc = p.pairs[i]
        return rep(short(run, PROBE_REQUESTS * (run.concurrency or 1)), at(sc, p.terms, moves))[0]

    return probe


def _readings(
    pairs: list[tuple[ObservedRun, Scenario]],
    terms: list[fl.Term],
    first: list[tuple[np.ndarray, dict[str, Any]]],
    rep: Callable[..., tuple[np.ndarray, dict[str, Any]]],
) -> list[Problem]:
    """A problem per reading of `READINGS` that the scenarios do not already use and that changes some run's replayed
    means (a dense model, or a cost model that does not read the field, is not changed: no problem, no probes)."""
    out = []
    rungs = [t for t in terms if t.path in READING_LADDER]
    sub = rungs + [t for t in terms if t.path in READING_TTFT and t.path not in READING_LADDER]
    for path, value in READINGS:
        try:
            if all(get_path(scenario_data(sc), path) == value for _, sc in pairs):
                continue
        except ServesimError:
            continue  # a scenario without the field
        alt = [(r, load_scenario(sc, [f"{path}={value}"])) for r, sc in pairs]
        logs = [rep(r, sc) for r, sc in alt]
        if all(np.array_equal(a, b, equal_nan=True) for (a, _), (b, _) in zip(logs, first, strict=True)):
            continue
        ladder = [list(range(k)) for k in range(1, len(rungs) + 1)]
        out.append(Problem((path, value), alt, sub, logs, ladder))
    return out


def _fit_chosen(
    problems: list[Problem],
    k: int,
    active: list[int],
    base: list[np.ndarray],
    meas: list[np.ndarray],
    rep: Callable[..., tuple[np.ndarray, dict[str, Any]]],
) -> tuple[Problem, list[int], tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """`_fit_problem` of the chosen problem and set; where the guard keeps the preset over another reading, that
    reading with every one of its terms (`_ttft_retry`), and where that is refused too, the scenario's own reading's
    leave-one-out choice. Returns the problem and set fitted, `_fit_problem`'s tuple (every replayed point kept),
    the rejected reading (empty where a reading is used or none was chosen) and the retry's record."""
    p = problems[k]
    moves, after_logs, reasons, bound, points, cmps = _fit_problem(p, active, base, meas, rep)
    rejected: dict[str, Any] = {}
    ttft_retry: dict[str, Any] = {}
    if p.reading is not None and after_logs is None:  # the guard kept the preset: the reading with its TTFT terms
        rejected = {"chosen": p.label(active), "kept_preset": reasons}
        retry = _ttft_retry(p, active)
        if retry:
            moves, after_logs, reasons, bound, more, cmps = _fit_problem(p, retry, base, meas, rep)
            points += more[1:]
            ttft_retry = {"after": rejected, "chosen": p.label(retry), "kept_preset": reasons, "at_bound": bound}
            if after_logs is not None:  # accepted: the reading is used, nothing was rejected in the end
                active, rejected = retry, {}
    if p.reading is not None and after_logs is None:  # still refused: the scenario's own reading's best
        p, (_, active, _) = problems[0], choose_reading(problems[:1])
        moves, after_logs, reasons, bound, more, cmps = _fit_problem(p, active, base, meas, rep)
        points += more[1:]
    return p, active, (moves, after_logs, reasons, bound, points, cmps), rejected, ttft_retry


def _ttft_retry(p: Problem, active: list[int]) -> list[int]:
    """A rejected reading's every term: its whole ladder and its TTFT terms (`READING_TTFT`), the reading's full
    physical set (leave-one-out's tie stopped short of terms the TPOT rows leave flat, and the prompt side may need
    them all); empty where there is no TTFT term to add (the runs do not inform them, or they were already free)."""
    every = fl.identifiable(p.rows, p.terms, range(len(p.terms)))  # of them, those the rows can tell apart
    if all(p.terms[i].path not in READING_TTFT or i in active for i in every):
        return []
    return every


def fitted(sc: Scenario, res: FitResult) -> Scenario:
    """`sc` at the fit's values and reading (the fitted runs' scenario as `fit_means` used it)."""
    start = {q.path: q.x0 for q in res.params}
    sets = [f"{k}={v!r}" for k, v in res.values.items() if v != start.get(k)]
    sets += [f"{k}={v}" for k, v in res.diagnosis.get("reading", {}).items()]
    return load_scenario(sc, sets) if sets else sc


def _values(terms: list[fl.Term], moved: list[fl.Term], moves: np.ndarray) -> dict[str, float]:
    """Every term's value: the scenario's own (not a round trip through log coordinates) where the fit left it;
    `moves` are of the terms `moved` (a reading's subset of `terms`)."""
    out = {t.path: t.x0 for t in terms}
    out |= {t.path: t.value(float(x)) for t, x in zip(moved, moves, strict=True) if x != 0.0}
    return out

"""Queueing theory vs simulation in full (issue 6), and max-token clipping on the paper's setup.

    python benchmarks/queueing.py           # full budgets (~25 CPU-minutes), rewrites benchmarks/QUEUEING.md
                                            # and benchmarks/plots/queueing_{check,clipping}.png
    python benchmarks/queueing.py --quick   # small budgets, prints the table, writes nothing
    python benchmarks/queueing.py --plots   # only the clipping plot (theory, seconds)

Budgets grow with the load because the variance of a mean wait grows like 1/(1 − ρ)⁴: per replication
30k / 60k / 100k requests and 10 / 10 / 20 replications at ρ = 0.3 / 0.6 / 0.8 (the first 10% of each
replication is deleted as warm-up). That puts the standard error of the mean wait near 0.5–0.8%, so
"within 2% of theory" is a ~3-standard-error test for a correct simulator.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# this script's own name would shadow the `queueing` package: take benchmarks/ off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PLOTS = ROOT / "benchmarks" / "plots"
RHOS = (0.3, 0.6, 0.8)
FULL_REPLICATIONS = {0.3: 10, 0.6: 10, 0.8: 20}
FULL_REQUESTS = {0.3: 30_000, 0.6: 60_000, 0.8: 100_000}
PAPER_A = 0.0225  # s/token, LLaMA-2-7B-chat on one A100 (second-hand, PAPERS.md)
PAPER_LAM = 1.0 / 40.0  # req/s, the paper's setting (second-hand)
TARGET = 0.02  # exact models: |sim − theory| / theory within 2%


# ------------------------------------------------------------------------------------ paper setup
def roofline_a() -> dict[str, float]:
    """Decode step at batch 1 for LLaMA-2-7B on one A100-80GB from the roofline cost model (seconds)."""
    import sim  # noqa: F401  (import order: sim before hwprofiles)
    from hwprofiles import catalog
    from sim.costmodel.models import RooflineCost, RooflineCostConfig
    from sim.tools.queueing_check import azure_outputs
    from sim.workload.traces import load_trace, resolve_trace_path

    cost = RooflineCost(RooflineCostConfig(), catalog.model("llama-2-7b"), catalog.gpu("a100-80g"))
    prompts = load_trace(resolve_trace_path("azure-conv"), "azure").prompt_tokens
    ctx = float(prompts.mean() + azure_outputs().mean() / 2.0)  # mean context over a request's decode steps
    step = lambda c: float(cost.decode_run(1, np.array([c]))[0])  # noqa: E731
    return {
        "a": step(ctx),
        "a_ctx1": step(1.0),
        "a_ctx4k": step(4096.0),
        "context": ctx,
        "prefill_mean_prompt_s": cost.iteration([(round(float(prompts.mean())), 0)], 0, 0),
    }


def _wait_or_nan(lam: float, pmf: Any, a: float, n_max: int) -> float:
    import queueing as q

    try:
        return q.mean_delay(lam, pmf, a, 0.0, n_max).wait_s
    except q.UnstableError:
        return float("nan")


def clipping_plot(path: Path | None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """E[Wq] and the clipping objective vs n_max for the Azure conversation outputs; optimal n_max marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import queueing as q
    from sim.tools.queueing_check import azure_outputs

    out = azure_outputs()
    pmf = q.token_pmf(out)
    roof = roofline_a()
    a = roof["a"]
    es = a * pmf.mean
    cases = [(f"ρ={r:g}, a={a * 1e3:.1f} ms (roofline)", r / es, a) for r in (0.5, 0.8, 0.9, 0.95)]
    cases.append((f"paper: λ=1/40, a={PAPER_A * 1e3:.1f} ms", PAPER_LAM, PAPER_A))
    cases.append((f"paper λ=1/40, a={a * 1e3:.1f} ms (roofline)", PAPER_LAM, a))
    ns = np.arange(1, int(pmf.values[-1]) + 1)
    gamma = q.DEFAULT_CLIP_PENALTY_S
    rows = []
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.6))
    for label, lam, aa in cases:
        rho_full = lam * aa * pmf.mean
        waits = np.array([_wait_or_nan(lam, pmf, aa, int(n)) for n in ns])
        frac = np.array([q.clipped_moments(pmf, aa, 0.0, int(n)).frac_clipped for n in ns])
        opt = q.optimal_n_max(lam, pmf, aa, 0.0)
        (line,) = ax0.plot(ns, waits, label=f"{label}: n*={opt.n_max}")
        ax0.plot([opt.n_max], [opt.mean_wait_s], "o", color=line.get_color())
        obj = waits + gamma * frac
        ax1.plot(ns, obj, color=line.get_color())
        ax1.plot([opt.n_max], [opt.mean_wait_s + gamma * opt.frac_clipped], "o", color=line.get_color())
        full = q.mean_delay(lam, pmf, aa, 0.0, None)
        rows.append(
            {
                "case": label,
                "lam": lam,
                "a": aa,
                "rho": rho_full,
                "wait_full_s": full.wait_s,
                "n_opt": opt.n_max,
                "wait_opt_s": opt.mean_wait_s,
                "frac_clipped": opt.frac_clipped,
                "p90": float(np.percentile(out, 90)),
                "wait_p90_cap_s": q.mean_delay(lam, pmf, aa, 0.0, float(np.percentile(out, 90))).wait_s,
            }
        )
    ax0.set_yscale("log")
    ax0.set_ylim(1e-3, None)
    ax0.set_xlabel("n_max (output tokens)")
    ax0.set_ylabel("mean queueing delay E[Wq] (s)")
    ax0.set_title("M/G/1 with clipping: Azure conversation outputs, LLaMA-2-7B / A100")
    ax0.legend(fontsize=7, loc="lower right")
    ax0.grid(alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_xlabel("n_max (output tokens)")
    ax1.set_ylabel(f"E[Wq] + γ·P(N > n_max), γ = {gamma:g} s")
    ax1.set_title("objective of queueing.optimal_n_max (dots: its minimum)")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return rows, roof


# ------------------------------------------------------------------------------------ the checks
def check_plot(report: Any, path: Path) -> None:
    """Relative error of each row with its 95% CI (and the Bonferroni interval, thin) around 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    colors = {"exact": "tab:blue", "bound": "tab:orange", "approx": "tab:gray"}
    for yi, r in zip(y, rows, strict=True):
        t = r.theory_s
        ax.plot([(r.test_low_s - t) / t, (r.test_high_s - t) / t], [yi, yi], color=colors[r.kind], lw=1)
        ax.plot([(r.ci_low_s - t) / t, (r.ci_high_s - t) / t], [yi, yi], color=colors[r.kind], lw=4)
        ax.plot([r.rel_error], [yi], "k|", ms=10)
    ax.axvline(0.0, color="k", lw=0.8)
    for s in (-TARGET, TARGET):
        ax.axvline(s, color="tab:red", lw=0.8, ls="--")
    ax.set_yticks(y, [f"{r.model}  ρ={r.rho:g}" for r in rows], fontsize=8)
    ax.set_xlabel("(simulation − theory) / theory   (thick: 95% CI, thin: Bonferroni; dashed: ±2%)")
    lim = max(0.1, min(0.5, max(abs(r.rel_error) for r in rows if r.kind != "approx") * 3))
    ax.set_xlim(-lim, lim)
    ax.set_title("servesim vs queueing theory (approximations off-scale are listed in QUEUEING.md)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(report: Any) -> list[str]:
    lines = [
        "| model | ρ | theory (s) | sim (s) | 95% CI (s) | rel. error | kind | in 95% CI | within 2% |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in report.rows:
        within = ("yes" if abs(r.rel_error) <= TARGET else "**no**") if r.kind == "exact" else "-"
        inside = {"exact": "yes" if r.in_ci else "**no**", "bound": "holds" if r.in_ci else "**no**"}.get(r.kind, "-")
        lines.append(
            f"| {r.model} | {r.rho:g} | {r.theory_s:.5g} | {r.sim_s:.5g} | {r.ci_low_s:.5g} – {r.ci_high_s:.5g} "
            f"| {r.rel_error:+.2%} | {r.kind} | {inside} | {within} |"
        )
    return lines


def exact_sojourn(rho: float) -> float:
    """Exact mean sojourn of the dyn-batch setup at load ρ = λα (embedded Markov chain)."""
    from sim.tools import dynamic_batching_mean_wait
    from sim.tools import queueing_check as check

    return dynamic_batching_mean_wait(rho / check.BATCH_ALPHA, check.BATCH_ALPHA, check.BATCH_TAU0).sojourn_s


def write_markdown(report: Any, clip_rows: list[dict[str, Any]], roof: dict[str, float], meta: dict[str, Any]) -> None:
    from queueing import DEFAULT_CLIP_PENALTY_S, check

    exact = [r for r in report.rows if r.kind == "exact"]
    n_in = sum(r.in_ci for r in exact)
    n_2 = sum(abs(r.rel_error) <= TARGET for r in exact)
    worst = max(exact, key=lambda r: abs(r.rel_error))
    c_share = roof["prefill_mean_prompt_s"] / (roof["a"] * check.azure_outputs().mean())
    n_asserted = sum(r.kind != "approx" for r in report.rows)
    bounds = [r for r in report.rows if r.kind == "bound"]
    tight = ", ".join(f"{(r.theory_s - exact_sojourn(r.rho)) / r.theory_s:.1e} at ρ = {r.rho:g}" for r in bounds)
    misses = [r for r in report.rows if r.kind != "approx" and not r.in_ci]
    miss_text = (
        "Rows outside their 95% CI: "
        + ", ".join(f"{r.model} at ρ = {r.rho:g} ({r.rel_error:+.2%})" for r in misses)
        + f" — {len(misses)} of {n_asserted}, against ~{0.05 * n_asserted:.1f} expected by chance."
        if misses
        else f"No row fell outside its 95% CI ({n_asserted} asserted rows)."
    )
    bound_text = (
        "Inoue's bound held (not below the 95% CI) at every load."
        if all(r.in_ci for r in bounds)
        else "Inoue's bound fell below the 95% CI at: "
        + ", ".join(f"ρ = {r.rho:g}" for r in bounds if not r.in_ci)
        + "."
    )
    setups = "\n".join(f"| {s.name} | {s.title} | {s.how} |" for s in check.SETUPS.values())
    clip = [
        "| case | λ (req/s) | a (s/token) | ρ unclipped | E[Wq] unclipped (s) | n* | E[Wq](n*) (s) | clipped at n* "
        f"| E[Wq] with n_max = p90 ({clip_rows[0]['p90']:.0f}) (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in clip_rows:
        clip.append(
            f"| {c['case']} | {c['lam']:.4g} | {c['a']:.4g} | {c['rho']:.3f} | {c['wait_full_s']:.4g} | {c['n_opt']} "
            f"| {c['wait_opt_s']:.4g} | {c['frac_clipped']:.1%} | {c['wait_p90_cap_s']:.4g} |"
        )
    text = f"""# Queueing theory vs simulation

Command: `python benchmarks/queueing.py` (`servesim check-queueing` with larger budgets). Machine:
{meta["machine"]}; {meta["workers"]} worker processes; {meta["wall_min"]:.1f} min wall (load average
{meta["load"]} at the end: the machine was shared); run on {meta["date"]}.
Budgets per replication / replications: {meta["budget"]}; first {meta["warmup"]:.0%} of each replication
deleted as warm-up; 95% Student-t intervals over replication means; root seed 0.

**Result.** {n_in} of {len(exact)} exact rows have the theory inside the 95% CI, {n_2} of {len(exact)} are
within 2% of it (largest |error|: {worst.model} at ρ = {worst.rho:g}, {worst.rel_error:+.2%}); the command's
family-wise verdict (each asserted row at {report.row_confidence:.2%}, Bonferroni) is
**{"pass" if report.passed else "FAIL"}**. {bound_text}

![sim vs theory](plots/queueing_check.png)

{chr(10).join(markdown_table(report))}

## What each row simulates

Every setup is one `linear`-cost instance with Poisson arrivals; the simulator's `queue_delay_s` (arrival
→ first scheduled) is compared with E[Wq], and for the bound row `e2el_s` with Inoue's bound on the
mean sojourn. A = {check.A} s/token everywhere.

| setup | model | engine configuration |
|---|---|---|
{setups}

How a token law becomes an M/G/1 service time: with `fcfs` and `max_num_seqs: 1` a request runs
alone, one prefill iteration then n − 1 decode iterations, and the next request is admitted at the
iteration boundary where it finishes. With a 1-token prompt and per-prefill-token cost c + a,
per-decoding-sequence cost a and base 0, S = c + a·n exactly; with base a and nothing else, S = a·n for
any prompt (used with trace lengths, whose prompts vary). `tests/test_queueing_check.py` proves the
mapping per request: the simulator's queue delays equal Lindley's recursion (batch size 1) and the
direct batch recursions (dynamic, capped, fixed batching) on the same sample, to 1e-6 s.

## Max-token clipping on the paper's setup

![clipping](plots/queueing_clipping.png)

Output lengths: the Azure 2023 conversation trace (19,366 requests; mean {check.azure_outputs().mean():.0f},
max {check.azure_outputs().max()} tokens). a from the roofline cost model (`RooflineCost`, LLaMA-2-7B,
`a100-80g`, decode at batch 1): **{roof["a"]:.4f} s/token** at the trace's mean decode context
({roof["context"]:.0f} tokens; {roof["a_ctx1"]:.4f} s at context 1, {roof["a_ctx4k"]:.4f} s at 4096), against the
paper's a ≈ {PAPER_A} s measured with HuggingFace generation — the roofline is {PAPER_A / roof["a"]:.1f}x faster
(it assumes 80% of HBM bandwidth and 2 ms of per-iteration overhead; eager HF decoding has far more
overhead per token). c = 0 as in the paper (the roofline prefill of the trace's mean 1,155-token prompt
would add c ≈ {roof["prefill_mean_prompt_s"]:.3f} s, ~{c_share:.0%} of E[S]).
n* is `queueing.optimal_n_max` with its default price of {DEFAULT_CLIP_PENALTY_S:g} s of mean waiting per
clipped answer (a calibration to the paper's reported optimum, not a value from the paper).

{chr(10).join(clip)}

## Notes (honest)

- **M/M/1.** The engine's service time is a sum of iteration costs, so it is lattice-valued: exponential
  service cannot be produced exactly. `mm1-geo` uses geometric output lengths (mean {check.GEO_MEAN}) with
  S = a·n, which is an *exact* M/G/1 (E[S²] = a²(2 − p)/p²); the M/M/1 formula at the same mean would be
  {-check.mm1_reference_gap():.2%} higher. The theory column is the exact geometric P–K value.
- **Clipping** uses the engine's `admission.max_tokens` (the run asserts outputs were cut); theory is
  `queueing.mean_delay` on the trace's empirical pmf, which is exactly the law the workload samples
  (with replacement) from. ρ for that row is the *clipped* load.
- **Batching.** With 1-token prompts and outputs every batch is one iteration of τ0 + α·b, so the
  embedded-chain result of `dynamic_batching_mean_wait` is exact for `static` dynamic batching (and
  for `fcfs` continuous batching, which is the same system here); elastic batching equals unlimited
  dynamic batching in this model (no intra-batch waiting exists when batch time depends on size
  only), and the row checks `static` mode `elastic` against it. Batching rows use ρ = λα (unlimited),
  λ(α + τ0/b_max) (capped) and λ(τ0 + αb)/b (fixed). Inoue's bound is nearly tight at these
  parameters ((bound − exact mean sojourn)/bound: {tight}), so "holds" means the bound is not below
  the CI; the simulated mean itself may sit a hair above it by noise.
  Length-dependent batch times (a batch runs until its longest output) have no exact formula here.
- **M/G/c is not asserted.** The simulator has no central queue: `least_requests` commits a request to
  an instance on arrival (join-shortest-queue by count, blind to remaining work). Allen–Cunneen
  approximates the central-queue M/G/c, which waits less; the gap is largest at light load, where JSQ
  waits behind one long job while another instance frees first.
- **Statistics.** Replication means of waiting times are right-skewed at high load, so the t-interval
  under-covers slightly: a numpy Lindley study of this design measured 93–96% coverage for the nominal
  95%. With {n_asserted} asserted rows, ~{0.05 * n_asserted:.1f} misses of the 95% CI are expected by
  chance; the exit status of `servesim check-queueing` therefore uses Bonferroni-widened intervals
  (family-wise 95%), and the default test suite asserts that plus a binomial limit on the number of
  95% misses. {miss_text}
- Warm-up: the system starts empty; the first 10% of each replication is deleted. FCFS waits do
  not depend on later arrivals, so the end of a run (no more arrivals) biases nothing.
"""
    (ROOT / "benchmarks" / "QUEUEING.md").write_text(text)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small budgets; print only")
    ap.add_argument("--plots", action="store_true", help="only the clipping plot")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    if args.plots:
        rows, roof = clipping_plot(PLOTS / "queueing_clipping.png")
        print(roof)
        for r in rows:
            print(r)
        return
    from rich.console import Console

    from sim.tools import queueing_check as check

    reps = {r: 4 for r in RHOS} if args.quick else FULL_REPLICATIONS
    reqs = {r: 3000 for r in RHOS} if args.quick else FULL_REQUESTS
    workers = args.workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    done = [0]

    def progress(i: int, n: int) -> None:
        if i * 20 // n != done[0]:
            done[0] = i * 20 // n
            print(f"  {i}/{n} replications, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    report = check.run_checks(RHOS, replications=reps, requests=reqs, workers=workers, progress=progress)
    wall = time.perf_counter() - t0
    Console(width=140).print(check.render_table(report))
    print("\n".join(markdown_table(report)))
    if args.quick:
        return
    check_plot(report, PLOTS / "queueing_check.png")
    clip_rows, roof = clipping_plot(PLOTS / "queueing_clipping.png")
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "workers": workers,
        "wall_min": wall / 60.0,
        "date": time.strftime("%Y-%m-%d"),
        "budget": ", ".join(f"ρ={r:g}: {reqs[r]:,} x {reps[r]}" for r in RHOS),
        "warmup": 0.1,
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    write_markdown(report, clip_rows, roof, meta)
    print(f"wrote benchmarks/QUEUEING.md, {PLOTS / 'queueing_check.png'}, {PLOTS / 'queueing_clipping.png'}")
    if not report.passed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The `servesim` command line (Typer). User mistakes print one line on stderr and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import calibrate.cli as _calibrate  # the calibrate sub-app and the fidelity report
from sim.cluster.power import cost_caption
from sim.errors import ServesimError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Discrete-event simulator of LLM serving clusters."
)
out = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _fmt_ms(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x * 1000:.1f}"


def summary_table(summary: dict[str, Any], title: str) -> Table:
    c, tp = summary["counts"], summary["throughput"]
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    for p in ("mean", "p50", "p90", "p95", "p99"):
        t.add_column(f"{p} (ms)", justify="right")
    for key, label in (
        ("ttft_s", "TTFT"),
        ("tpot_s", "TPOT"),
        ("itl_s", "ITL"),
        ("e2el_s", "E2E"),
        ("queue_delay_s", "queue delay"),
    ):
        m = summary["metrics"][key]
        t.add_row(label, *(_fmt_ms(m.get(p)) for p in ("mean", "p50", "p90", "p95", "p99")))
    t.caption = (
        f"requests {c['arrived']}: completed {c['completed']}, rejected {c['rejected']}, in flight {c['in_flight']}, "
        f"preemptions {c['preemptions']} | {tp['requests_per_s']:.2f} req/s, {tp['output_tokens_per_s']:.0f} tok/s, "
        f"goodput {tp['goodput_rps']:.2f} req/s, SLO attainment {tp['slo_attainment']:.1%} | "
        f"simulated {summary['sim']['simulated_s']:.1f} s in {summary['sim']['wall_s']:.2f} s wall, "
        f"{summary['sim']['events']} events"
    )
    cost = cost_caption(summary)
    if cost:
        t.caption += f" | {cost}"
    t.caption_justify = "left"
    return t


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<name>)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a key: a.b=VALUE (repeatable)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip writing plots")] = False,
    trace_events: Annotated[
        Path | None, typer.Option("--trace-events", help="write a Chrome/Perfetto trace (JSON) of the run here")
    ] = None,
) -> None:
    """Run one simulation: print a summary table and write the run directory."""
    import sim

    try:
        sc = sim.load_scenario(scenario, set_ or [])
        progress_cb, bar = None, None
        if not quiet and sys.stderr.isatty():
            from rich.progress import Progress

            bar = Progress(console=err, transient=True)
            task = bar.add_task("arrivals", total=None)
            bar.start()

            def progress_cb(i: int, n: int) -> None:
                bar.update(task, completed=i, total=n)

        try:
            res = sim.run(sc, progress=progress_cb, trace_events=trace_events)
        finally:
            if bar is not None:
                bar.stop()
        d = out_dir or Path("runs") / sc.name
        res.save(d, plots=not no_plots)
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(
        summary_table(
            res.summary,
            f"{sc.name}: {sc.model_spec.name} on {sim.cluster.pools.cluster_label(sc)}",
        )
    )
    out.print(f"wrote {d}/ (requests.parquet, timeline.parquet, summary.json, plots/)")
    if trace_events is not None:
        out.print(f"wrote {trace_events} (open in https://ui.perfetto.dev or chrome://tracing)")


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Write the scenario JSON schema (for editors and validation)."""
    from sim.config.scenario import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n")
    else:
        print(text)


@app.command("list")
def list_(what: Annotated[str, typer.Argument(help="models | hardware | policies | traces")]) -> None:
    """List what is built in."""
    from hwprofiles import catalog

    t = Table()
    if what == "models":
        for c in ("name", "layers", "hidden", "heads", "kv heads", "params", "context", "hf id"):
            t.add_column(c)
        for n in catalog.model_names():
            m = catalog.model(n)
            t.add_row(
                n,
                str(m.num_layers),
                str(m.hidden_size),
                str(m.num_heads),
                str(m.num_kv_heads),
                f"{m.num_params / 1e9:.1f}B",
                str(m.max_context),
                m.hf_id,
            )
    elif what == "hardware":
        for c in ("name", "memory GB", "bf16 TFLOP/s", "HBM TB/s", "link GB/s", "$/h", "TDP W"):
            t.add_column(c)
        for n in catalog.gpu_names():
            g = catalog.gpu(n)
            t.add_row(
                n,
                f"{g.memory_bytes / 1e9:.0f}",
                f"{g.bf16_flops / 1e12:.0f}",
                f"{g.mem_bw / 1e12:.2f}",
                f"{g.intra_node_bw / 1e9:.0f} {g.intra_node_link}",
                f"{g.price_per_hour:.2f}",
                f"{g.tdp_w:.0f}",
            )
    elif what == "policies":
        from policies.registry import MIGRATIONS, ROUTERS, SCHEDULERS
        from sim.costmodel.models import COST_MODELS

        for c in ("family", "kind", "what it does"):
            t.add_column(c)
        families = (
            ("scheduler", SCHEDULERS), ("router", ROUTERS), ("migration", MIGRATIONS), ("cost_model", COST_MODELS)
        )
        for fam, reg in families:
            for e in reg.entries.values():
                t.add_row(fam, e.kind, e.doc)
    elif what == "traces":
        from sim.workload.traces import trace_names

        t.add_column("name")
        t.add_column("path")
        for n, p in trace_names().items():
            t.add_row(n, str(p))
    else:
        _fail(f"unknown list {what!r}; known: hardware, models, policies, traces")
    out.print(t)


@app.command()
def estimate(
    model: Annotated[str, typer.Option(help="model name")],
    hardware: Annotated[str, typer.Option(help="GPU name")],
    tp: Annotated[int, typer.Option(help="tensor-parallel degree")] = 1,
    prefill_tokens: Annotated[int, typer.Option(help="tokens per prompt (0 = a decode step)")] = 0,
    batch_size: Annotated[int, typer.Option(help="prompts (prefill) or sequences (decode)")] = 1,
    context_tokens: Annotated[int, typer.Option(help="context per sequence for a decode step")] = 0,
    cost_model: Annotated[str, typer.Option(help="cost model kind")] = "roofline",
    profile: Annotated[Path | None, typer.Option(help="fitted profile YAML (servesim calibrate fit)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Price one iteration and show its breakdown by operator."""
    from sim.config.scenario import load_scenario
    from sim.core.engine import build_cost_model

    try:
        if batch_size < 1 or prefill_tokens < 0 or context_tokens < 0:
            raise ServesimError("--batch-size must be >= 1, token counts >= 0")
        sc = load_scenario(
            {
                "model": model,
                "hardware": hardware,
                "cluster": {"tp": tp},
                "cost_model": {"kind": cost_model, **({"profile": str(profile.resolve())} if profile else {})},
                "workload": {
                    "num_requests": 1,
                    "arrival": {"kind": "poisson", "rate": 1},
                    "lengths": {"kind": "fixed", "prompt": 1, "output": 1},
                },
            }
        )
        cm = build_cost_model(sc)
    except ServesimError as e:
        _fail(str(e))
        return
    if prefill_tokens > 0:
        parts = cm.breakdown([(prefill_tokens, 0)] * batch_size, 0, 0)
    else:
        parts = cm.breakdown([], batch_size, batch_size * (context_tokens + 1))
    total = sum(parts.values())
    if as_json:
        print(json.dumps({"iteration_s": total, "breakdown": parts}))
        return
    t = Table(
        title=f"{model} on {tp} x {hardware}: "
        + (
            f"prefill {batch_size} x {prefill_tokens}"
            if prefill_tokens
            else f"decode {batch_size} seqs @ {context_tokens}"
        )
    )
    t.add_column("operator")
    t.add_column("ms", justify="right")
    t.add_column("share", justify="right")
    for k, v in parts.items():
        t.add_row(k, f"{v * 1000:.3f}", f"{v / total:.1%}" if total else "-")
    t.add_row("[bold]iteration[/]", f"[bold]{total * 1000:.3f}[/]", "100%")
    out.print(t)


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML: base, grid/zip, replications")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory (default runs/sweeps/<name>)")] = None,
    workers: Annotated[int | None, typer.Option(help="local worker processes (default: CPU count)")] = None,
    cluster: Annotated[str | None, typer.Option(help="Dask scheduler address, e.g. tcp://HOST:8786")] = None,
    plot: Annotated[
        list[str] | None, typer.Option(help="figure: x=COL,y=COL[+COL],hue=COL (repeatable)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
) -> None:
    """Run a sweep (cached points are read, not re-run); write sweep.parquet and optional plots."""
    from sim.tools.sweep.api import run_sweep, sweep_table
    from sim.tools.sweep.plots import parse_plot_spec, save_plot

    try:
        for spec in plot or []:
            parse_plot_spec(spec)
        res = run_sweep(sweep_file, out_dir, workers=workers, cluster=cluster, progress=not quiet)
        figs = [save_plot(res.frame, spec, res.out_dir) for spec in plot or []]
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(sweep_table(res))
    for f in figs:
        out.print(f"wrote {f}")


@app.command()
def plan(
    model: Annotated[str, typer.Option(help="model name (servesim list models)")],
    traffic: Annotated[str | None, typer.Option(help="trace to replay: shipped name or file")] = None,
    rate: Annotated[float | None, typer.Option(help="target req/s (with --lengths; rescales --traffic)")] = None,
    lengths: Annotated[str | None, typer.Option(help="lengths: shipped name, length-only CSV, fixed:P,O")] = None,
    format_: Annotated[str | None, typer.Option("--format", help="format of --traffic/--lengths file")] = None,
    requests: Annotated[int | None, typer.Option(help="requests to simulate (synthetic default 2000)")] = None,
    cv: Annotated[float | None, typer.Option(help="gamma arrivals with this CV instead of Poisson")] = None,
    slo: Annotated[str | None, typer.Option(help="limits, e.g. ttft_p99=2,tpot_p99=0.1 (seconds)")] = None,
    attainment: Annotated[float, typer.Option(help="share meeting every threshold (0 = off)")] = 0.9,
    hardware: Annotated[str, typer.Option(help="GPU types, comma-separated")] = "h100-sxm,a100-80g,l40s",
    tp: Annotated[str, typer.Option(help="tensor-parallel degrees")] = "1,2,4,8",
    shapes: Annotated[str, typer.Option(help="colocated,disaggregated")] = "colocated,disaggregated",
    schedulers: Annotated[str, typer.Option(help="KIND[:TOKEN_BUDGET],...")] = "fcfs,sarathi:512,sarathi:2048",
    max_batch: Annotated[str, typer.Option(help="max_num_seqs values")] = "256",
    budget: Annotated[int, typer.Option(help="most GPUs in a configuration")] = 64,
    top: Annotated[int, typer.Option(help="feasible configurations to rank")] = 3,
    replications: Annotated[int, typer.Option(help="confirming runs of the winner")] = 3,
    router: Annotated[str, typer.Option(help="router kind for every candidate")] = "least_requests",
    margin: Annotated[
        float,
        typer.Option(help="sizes whose queueing estimate misses by this factor are tried last, never excluded"),
    ] = 1.5,
    search_requests: Annotated[int | None, typer.Option(help="screen on the first N requests")] = None,
    base: Annotated[Path | None, typer.Option(help="scenario YAML to inherit cost_model, kv_cache, ...")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a base key: a.b=VALUE")] = None,
    capacity: Annotated[bool, typer.Option("--capacity", help="max sustainable rate per configuration")] = False,
    instances: Annotated[int, typer.Option(help="instances per configuration for --capacity")] = 1,
    workers: Annotated[int | None, typer.Option(help="local worker processes (default: CPU count)")] = None,
    cluster: Annotated[str | None, typer.Option(help="Dask scheduler address")] = None,
    max_simulations: Annotated[int, typer.Option(help="stop the search after this many runs")] = 400,
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("runs/plan"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
) -> None:
    """Find the cheapest configuration meeting the SLOs (or, with --capacity, each one's max rate)."""
    from sim.tools.planner.run import PlanOptions, run_plan

    opts = PlanOptions(
        model, traffic, rate, lengths, format_, requests, cv, slo, attainment, hardware, tp, shapes, schedulers,
        max_batch, budget, top, replications, router, margin, search_requests, base, set_, capacity, instances,
        workers, cluster, max_simulations,
    )

    def show(i: int, ev: Any) -> None:
        state = "meets SLO" if ev.feasible else "misses"
        err.print(f"[{i}] {ev.label}: ${ev.cost_per_hour:.2f}/h {state}", highlight=False)

    try:
        res, table, files = run_plan(opts, out_dir, None if quiet else show)
    except ServesimError as e:
        _fail(str(e))
        return
    out.print("\n".join(res.log))
    out.print(table)
    out.print(f"wrote {', '.join(str(f) for f in files)}")


@app.command()
def regress(
    scenarios: Annotated[
        list[Path] | None, typer.Argument(help="scenario YAMLs or directories (default scenarios/regression)")
    ] = None,
    baseline: Annotated[Path, typer.Option(help="baseline JSON (written by --update)")] = Path(
        "scenarios/regression/baseline.json"
    ),
    tolerance: Annotated[str, typer.Option(help="largest relative change that passes: 2% or 0.02")] = "2%",
    update: Annotated[bool, typer.Option("--update", help="rewrite the baseline with this run's metrics")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="list every metric, not only the changed ones")] = False,
) -> None:
    """Run regression scenarios and compare their metrics with a baseline; exit 1 on a change beyond tolerance."""
    from sim.tools.regress import regress as run_regress
    from sim.tools.regress import table, verdict

    def progress(name: str) -> None:
        if sys.stderr.isatty():
            err.print(f"[dim]running {name}[/]", highlight=False)

    try:
        rep, _ = run_regress(scenarios or [Path("scenarios/regression")], baseline, tolerance, update, progress)
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(table(rep, show_all))
    if update:
        out.print(f"wrote {baseline} ({len(rep.scenarios)} scenarios)")
        return
    out.print(verdict(rep), highlight=False)
    if rep.failed:
        raise typer.Exit(1)


@app.command("check-queueing")
def check_queueing(
    rho: Annotated[str, typer.Option(help="loads, comma-separated, each in (0, 1)")] = "0.3,0.6,0.8",
    replications: Annotated[int, typer.Option(help="independent runs per model and load")] = 10,
    requests: Annotated[int, typer.Option(help="requests per replication (first --warmup share deleted)")] = 10_000,
    models: Annotated[str | None, typer.Option(help="comma-separated subset (default: all)")] = None,
    warmup: Annotated[float, typer.Option(help="share of each replication deleted as warm-up")] = 0.1,
    seed: Annotated[int, typer.Option(help="root seed (SeedSequence)")] = 0,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: CPU count)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
) -> None:
    """Theory vs simulation for closed-form queueing results; exit 1 if an exact formula or a bound fails."""
    from sim.tools import queueing_check as check

    try:
        rep = check.run_checks(
            check.parse_rhos(rho),
            replications=replications,
            requests=requests,
            models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
            seed=seed,
            warmup=warmup,
            workers=workers,
        )
    except (ServesimError, ValueError) as e:
        _fail(str(e))
        return
    if as_json:
        print(json.dumps([r.to_json() for r in rep.rows], indent=2))
    else:
        out.print(check.render_table(rep))
    if not rep.passed:
        raise typer.Exit(1)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `servesim run`")],
    out_file: Annotated[Path | None, typer.Option("--out", help="HTML file (default RUN_DIR/report.html)")] = None,
) -> None:
    """Write one self-contained HTML page (summary, plots, scenario) of a run, for sharing."""
    from sim.output.report import write_report

    try:
        path = write_report(run_dir, out_file)
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(f"wrote {path}")


app.add_typer(_calibrate.app, name="calibrate")
app.command("fidelity")(_calibrate.fidelity)


def main() -> None:
    try:
        app()
    except ServesimError as e:  # anything that slipped past a command's own handling
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""The `servesim` command line (Typer). User mistakes print one line on stderr and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import calibrate.cli as _calibrate  # the calibrate sub-app and the fidelity report
from sim.errors import ServesimError
from sim.tools.summary import check_out_dir, parse_percentiles, summary_table
from sim.tools.tables import safe, show

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Discrete-event simulator of LLM serving clusters.")
out = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    """One line on stderr (user text escaped, never read as markup) and exit 2."""
    err.print(f"[bold red]error:[/] {safe(' '.join(str(msg).split()))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("servesim")
        except PackageNotFoundError:
            from sim.output.result import VERSION as v
        print(f"servesim {v}")
        raise typer.Exit()


@app.callback()
def _root(
    _v: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Discrete-event simulator of LLM serving clusters."""


FORMATS = ("parquet", "csv", "json")


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<name>)")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a key: a.b=VALUE (repeatable; relative paths from the working dir)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    profile: Annotated[
        Path | None, typer.Option(help="profile overlay from `calibrate fit-run`, applied before --set")
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip writing plots")] = False,
    trace_events: Annotated[
        Path | None, typer.Option("--trace-events", help="write a Chrome/Perfetto trace (JSON) of the run here")
    ] = None,
    format_: Annotated[
        str,
        typer.Option("--format", help="per-request rows also as requests.csv or requests.json (parquet always)"),
    ] = "parquet",
    percentiles: Annotated[
        str | None, typer.Option("--percentiles", help="latency percentiles to print, e.g. 50,90,99,99.9")
    ] = None,
) -> None:
    """Run one simulation: print a summary table and write the run directory."""
    import sim

    try:
        if format_ not in FORMATS:
            raise ServesimError(f"--format {format_!r}: expected one of {', '.join(FORMATS)}")
        ps = parse_percentiles(percentiles)
        sc = sim.load_scenario(scenario, (_calibrate.overlay_overrides(profile) if profile else []) + (set_ or []))
        d = out_dir or Path("runs") / sc.name
        check_out_dir(d)
        if trace_events is not None:
            check_out_dir(trace_events.parent, "--trace-events")
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
        try:
            res.save(d, plots=not no_plots)
            if format_ == "csv":
                res.requests.to_csv(d / "requests.csv", index=False)
            elif format_ == "json":
                res.requests.to_json(d / "requests.json", orient="records", lines=True)
        except OSError as e:
            raise ServesimError(f"--out {d}: cannot write ({e.strerror or e})") from None
    except ServesimError as e:
        _fail(str(e))
        return
    has_slo = any(v is not None for v in sc.slo.model_dump().values())
    title = f"{sc.name}: {sc.model_spec.name} on {sim.cluster.pools.cluster_label(sc)}"
    show(out, summary_table(res.summary, safe(title), res.requests, ps, has_slo))
    files = ["requests.parquet", *([f"requests.{format_}"] if format_ != "parquet" else [])]
    files += ["timeline.parquet", "summary.json", *([] if no_plots else ["plots/"])]
    out.print(f"wrote {safe(d)}/ ({', '.join(files)})", highlight=False, soft_wrap=True)
    if trace_events is not None:
        out.print(
            f"wrote {safe(trace_events)} (open in https://ui.perfetto.dev or chrome://tracing)",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Write the scenario JSON schema (for editors and validation)."""
    from sim.config.scenario import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2)
    if output:
        try:
            output.write_text(text + "\n")
        except OSError as e:  # a folder, a file in the way, a full or read-only disk
            _fail(f"--out {output}: cannot write ({e.strerror or e})")
    else:
        print(text)


@app.command("list")
def list_(what: Annotated[str, typer.Argument(help="models | hardware | policies | engines | traces")]) -> None:
    """List what is built in."""
    from sim.tools.listing import list_table

    try:
        t = list_table(what)
    except ServesimError as e:
        _fail(str(e))
        return
    show(out, t)


@app.command()
def estimate(
    model: Annotated[str, typer.Option(help="model name, Hugging Face config.json, or inline spec YAML")],
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
    from sim.tools.estimate import Estimate, breakdown_table

    try:
        est = Estimate(model, hardware, tp, prefill_tokens, batch_size, context_tokens, cost_model, profile)
        parts = est.price()
    except ServesimError as e:
        _fail(str(e))
        return
    if as_json:
        print(json.dumps({"iteration_s": sum(parts.values()), "breakdown": parts}))
        return
    show(out, breakdown_table(est, parts))


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML: base, grid/zip, replications")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory (default runs/sweeps/<name>)")] = None,
    workers: Annotated[int | None, typer.Option(help="local worker processes (default: CPU count)")] = None,
    cluster: Annotated[str | None, typer.Option(help="Dask scheduler address, e.g. tcp://HOST:8786")] = None,
    plot: Annotated[list[str] | None, typer.Option(help="figure: x=COL,y=COL[+COL],hue=COL (repeatable)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
) -> None:
    """Run a sweep (cached points are read, not re-run); write sweep.parquet and optional plots."""
    from sim.tools.sweep.api import run_sweep, sweep_table
    from sim.tools.sweep.plots import check_plot_columns, save_plot
    from sim.tools.sweep.spec import load_sweep

    try:
        sw = load_sweep(sweep_file)
        for spec in plot or []:
            check_plot_columns(spec, sw.param_names)
        res = run_sweep(sw, out_dir, workers=workers, cluster=cluster, progress=not quiet)
        figs = [save_plot(res.frame, spec, res.out_dir, res.sweep.param_names) for spec in plot or []]
    except ServesimError as e:
        _fail(str(e))
        return
    show(out, sweep_table(res))
    for f in figs:
        out.print(f"wrote {safe(f)}", highlight=False, soft_wrap=True)


@app.command()
def plan(
    model: Annotated[
        str, typer.Option(help="model name (servesim list models), Hugging Face config.json, or inline spec YAML")
    ],
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
    capacity: Annotated[
        bool,
        typer.Option(
            "--capacity",
            help="max sustainable rate per configuration: the highest request rate (binary search) whose run still "
            "meets --slo; default criterion median queueing delay <= 2 s (Sarathi-Serve's)",
        ),
    ] = False,
    instances: Annotated[int, typer.Option(help="instances per configuration for --capacity")] = 1,
    workers: Annotated[int | None, typer.Option(help="local worker processes (default: CPU count)")] = None,
    cluster: Annotated[str | None, typer.Option(help="Dask scheduler address")] = None,
    max_simulations: Annotated[int, typer.Option(help="stop the search after this many runs")] = 400,
    early_stop: Annotated[
        bool, typer.Option(help="stop a search run once its SLO miss is certain (confirmations always run in full)")
    ] = True,
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("runs/plan"),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no progress on stderr; only the result table on stdout")
    ] = False,
) -> None:
    """Find the cheapest configuration meeting the SLOs (or, with --capacity, each one's max rate)."""
    from sim.tools.planner.run import PlanOptions, ProgressLines, run_plan

    opts = PlanOptions(
        model, traffic, rate, lengths, format_, requests, cv, slo, attainment, hardware, tp, shapes, schedulers,
        max_batch, budget, top, replications, router, margin, search_requests, base, set_, capacity, instances,
        workers, cluster, max_simulations, early_stop,
    )  # fmt: skip
    try:
        check_out_dir(out_dir)
        progress = None if quiet else ProgressLines(lambda line: err.print(safe(line), highlight=False))
        res, table, files = run_plan(opts, out_dir, progress)
    except ServesimError as e:
        _fail(str(e))
        return
    if not quiet:
        out.print(safe("\n".join(res.log)), highlight=False, soft_wrap=True)
    show(out, table)
    if not quiet:
        out.print(f"wrote {safe(', '.join(str(f) for f in files))}", highlight=False, soft_wrap=True)


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
            err.print(f"[dim]running {safe(name)}[/]", highlight=False, soft_wrap=True)

    try:
        if update:  # the baseline is written after every scenario ran: a path in the way fails first
            from sim.tools.summary import check_out_dir

            if baseline.is_dir():
                raise ServesimError(f"--baseline {baseline}: is a directory, expected a JSON file")
            check_out_dir(baseline.parent, "--baseline")
        rep, _ = run_regress(scenarios or [Path("scenarios/regression")], baseline, tolerance, update, progress)
    except ServesimError as e:
        _fail(str(e))
        return
    show(out, table(rep, show_all))
    if update:
        out.print(f"wrote {safe(baseline)} ({len(rep.scenarios)} scenarios)", highlight=False, soft_wrap=True)
        return
    out.print(safe(verdict(rep)), highlight=False, soft_wrap=True)
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
    from sim.config.limits import MAX_REQUESTS
    from sim.tools import queueing_check as check
    from sim.tools.sweep.execute import MAX_LOCAL_WORKERS

    try:
        for opt, v, lo, hi in (
            ("--replications", replications, 2, 10_000),
            ("--requests", requests, 10, MAX_REQUESTS),
            ("--workers", workers or 1, 1, MAX_LOCAL_WORKERS),
            ("--seed", seed, 0, 2**63 - 1),
        ):
            if not lo <= v <= hi:
                raise ServesimError(f"{opt}: expected {lo:,} to {hi:,}, found {v:,}")
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
        show(out, check.render_table(rep))
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
    out.print(f"wrote {safe(path)}", highlight=False, soft_wrap=True)


app.add_typer(_calibrate.app, name="calibrate")
app.command("fidelity")(_calibrate.fidelity)
app.command("validate")(_calibrate.validate)


def run_cli(argv: list[str] | None = None) -> int:
    """The command line as a function returning the exit status (see sim.tools.entry)."""
    from sim.tools.entry import run_cli as _run

    return _run(argv)


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()

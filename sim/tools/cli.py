"""The `servesim` command line (Typer). User mistakes print one line on stderr and exit 2."""

from __future__ import annotations

import functools
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


def _check_out_dir(d: Path, option: str = "--out") -> None:
    """Fail before any work when the output directory cannot be a writable directory."""
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == d and not d.is_dir():
        raise ServesimError(f"{option} {d}: is a file, expected a directory")
    if probe != d and not probe.is_dir():
        raise ServesimError(f"{option} {d}: {probe} is a file, so the directory cannot be created")
    import os

    if not os.access(probe, os.W_OK | os.X_OK):
        raise ServesimError(f"{option} {d}: {probe} is not writable")


def _fmt_ms(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x * 1000:.1f}"


DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def parse_percentiles(text: str | None) -> tuple[float, ...]:
    """`50,90,99,99.9` → percentiles in (0, 100); one line naming --percentiles otherwise."""
    if text is None:
        return DEFAULT_PERCENTILES
    try:
        ps = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ServesimError(f"--percentiles {text!r}: expected comma-separated numbers, e.g. 50,90,99,99.9") from None
    if not ps or any(not 0 < p < 100 for p in ps):
        raise ServesimError(f"--percentiles {text!r}: each must be in (0, 100)")
    return ps


def _pct_label(p: float) -> str:
    return f"p{p:g}"


def _metric_row(summary: dict[str, Any], requests: Any, key: str, ps: tuple[float, ...]) -> list[float | None]:
    """Mean and percentiles of one latency: from the per-request rows when given, else the summary's."""
    import numpy as np

    m = summary["metrics"][key]
    if requests is None or key not in getattr(requests, "columns", ()):
        return [m.get("mean"), *(m.get(_pct_label(p)) for p in ps)]
    rows = requests if key == "queue_delay_s" else requests[requests["status"] == "completed"]
    v = rows[key].to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return [None] * (len(ps) + 1)
    return [float(v.mean()), *(float(x) for x in np.percentile(v, ps))]


def _slo_set(summary: dict[str, Any]) -> bool:
    slo = (summary.get("scenario") or {}).get("slo") or summary.get("slo")
    if isinstance(slo, dict):
        return any(v is not None for v in slo.values())
    return True


def summary_table(
    summary: dict[str, Any],
    title: str,
    requests: Any = None,
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
    slo: bool | None = None,
) -> Table:
    """Latency table (mean and percentiles, ms) with counts, throughput, goodput and cost as the caption."""
    c, tp = summary["counts"], summary["throughput"]
    t = Table(title=title, title_justify="left")
    t.add_column("metric", no_wrap=True)
    for p in ("mean", *map(_pct_label, percentiles)):
        t.add_column(f"{p} (ms)", justify="right", no_wrap=True)
    for key, label in (
        ("ttft_s", "TTFT"),
        ("tpot_s", "TPOT"),
        ("itl_s", "ITL"),
        ("e2el_s", "E2E"),
        ("queue_delay_s", "queue delay"),
    ):
        t.add_row(label, *(_fmt_ms(x) for x in _metric_row(summary, requests, key, percentiles)))
    span = tp.get("duration_s") or 0.0
    in_tok = tp.get("input_tokens_per_s")
    if in_tok is None and requests is not None and span > 0 and "prompt_tokens" in requests.columns:
        in_tok = float(requests.loc[requests["status"] == "completed", "prompt_tokens"].sum()) / span
    tokens = f"{tp['output_tokens_per_s']:.0f} output tok/s"
    if in_tok is not None:
        tokens = f"{in_tok:.0f} input + {tokens} = {in_tok + tp['output_tokens_per_s']:.0f} total tok/s"
    has_slo = _slo_set(summary) if slo is None else slo
    good = (
        f"goodput {tp['goodput_rps']:.2f} req/s, SLO attainment {tp['slo_attainment']:.1%}"
        if has_slo
        else "no SLO set (add `slo:` for goodput)"
    )
    t.caption = (
        f"requests {c['arrived']}: completed {c['completed']}, rejected {c['rejected']}, in flight {c['in_flight']}, "
        f"preemptions {c['preemptions']} | {tp['requests_per_s']:.2f} req/s, {tokens}, {good} | "
        f"simulated {summary['sim']['simulated_s']:.1f} s in {summary['sim']['wall_s']:.2f} s wall, "
        f"{summary['sim']['events']} events"
    )
    cost = cost_caption(summary)
    if cost:
        t.caption += f" | {cost}"
    t.caption_justify = "left"
    return t


FORMATS = ("parquet", "csv", "json")
MAX_BATCH = 1_000_000


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="run directory (default runs/<name>)")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a key: a.b=VALUE (repeatable; relative paths from the working dir)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
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
        sc = sim.load_scenario(scenario, set_ or [])
        d = out_dir or Path("runs") / sc.name
        _check_out_dir(d)
        if trace_events is not None:
            _check_out_dir(trace_events.parent, "--trace-events")
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
    out.print(f"wrote {safe(d)}/ ({', '.join(files)})", highlight=False)
    if trace_events is not None:
        out.print(f"wrote {safe(trace_events)} (open in https://ui.perfetto.dev or chrome://tracing)", highlight=False)


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
            ("scheduler", SCHEDULERS),
            ("router", ROUTERS),
            ("migration", MIGRATIONS),
            ("cost_model", COST_MODELS),
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
    from sim.config.limits import MAX_TOKENS, tp_problem
    from sim.config.modelarg import model_arg, model_label
    from sim.config.scenario import load_scenario
    from sim.core.engine import build_cost_model

    try:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ServesimError(f"--batch-size: expected 1 to {MAX_BATCH:,}, found {batch_size}")
        for opt, v in (("--prefill-tokens", prefill_tokens), ("--context-tokens", context_tokens)):
            if not 0 <= v <= MAX_TOKENS:
                raise ServesimError(f"{opt}: expected 0 to {MAX_TOKENS:,}, found {v}")
        spec = model_arg(model)
        sc = load_scenario(
            {
                "model": spec,
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
        bad_tp = tp_problem(sc)
        if bad_tp:
            raise ServesimError(f"--tp: {bad_tp}")
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
        title=f"{safe(model_label(spec))} on {tp} x {safe(hardware)}: "
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
    show(out, t)


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
    from sim.tools.sweep.plots import parse_plot_spec, save_plot

    try:
        for spec in plot or []:
            parse_plot_spec(spec)
        res = run_sweep(sweep_file, out_dir, workers=workers, cluster=cluster, progress=not quiet)
        figs = [save_plot(res.frame, spec, res.out_dir, res.sweep.param_names) for spec in plot or []]
    except ServesimError as e:
        _fail(str(e))
        return
    show(out, sweep_table(res))
    for f in figs:
        out.print(f"wrote {safe(f)}", highlight=False)


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
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("runs/plan"),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no progress on stderr; only the result table on stdout")
    ] = False,
) -> None:
    """Find the cheapest configuration meeting the SLOs (or, with --capacity, each one's max rate)."""
    from sim.tools.planner.run import PlanOptions, run_plan

    opts = PlanOptions(
        model,
        traffic,
        rate,
        lengths,
        format_,
        requests,
        cv,
        slo,
        attainment,
        hardware,
        tp,
        shapes,
        schedulers,
        max_batch,
        budget,
        top,
        replications,
        router,
        margin,
        search_requests,
        base,
        set_,
        capacity,
        instances,
        workers,
        cluster,
        max_simulations,
    )

    most = [0]

    def progress(i: int, ev: Any) -> None:
        if isinstance(ev, str):  # the up-front count
            import re

            m = re.search(r"at most (\d+) candidate runs", ev)
            most[0] = int(m.group(1)) if m else 0
            err.print(safe(ev), highlight=False)
            return
        state = "meets SLO" if ev.feasible else "misses"
        of = f"/{most[0]}" if most[0] else ""
        err.print(safe(f"[{i}{of}] {ev.label}: ${ev.cost_per_hour:.2f}/h {state}"), highlight=False)

    try:
        _check_out_dir(out_dir)
        res, table, files = run_plan(opts, out_dir, None if quiet else progress)
    except ServesimError as e:
        _fail(str(e))
        return
    if not quiet:
        out.print(safe("\n".join(res.log)), highlight=False)
    show(out, table)
    if not quiet:
        out.print(f"wrote {safe(', '.join(str(f) for f in files))}", highlight=False)


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
            err.print(f"[dim]running {safe(name)}[/]", highlight=False)

    try:
        rep, _ = run_regress(scenarios or [Path("scenarios/regression")], baseline, tolerance, update, progress)
    except ServesimError as e:
        _fail(str(e))
        return
    show(out, table(rep, show_all))
    if update:
        out.print(f"wrote {safe(baseline)} ({len(rep.scenarios)} scenarios)", highlight=False)
        return
    out.print(safe(verdict(rep)), highlight=False)
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
    out.print(f"wrote {safe(path)}", highlight=False)


app.add_typer(_calibrate.app, name="calibrate")
app.command("fidelity")(_calibrate.fidelity)


def _usage_error() -> type[Exception]:
    """click's UsageError (typer >= 0.26 vendors click as typer._click)."""
    try:
        from typer._click.exceptions import UsageError
    except ImportError:  # older typer: click itself
        from click.exceptions import UsageError
    return UsageError


@functools.cache
def _command() -> Any:
    """The click command typer builds from `app` (built once: typer rebuilds it on every `app()` call)."""
    return typer.main.get_command(app)


def run_cli(argv: list[str] | None = None) -> int:
    """The command line as a function returning the exit status: a bad option or value is one line naming
    the option (click's usage box is for --help), a user mistake anywhere one line; both exit 2."""
    usage = _usage_error()
    try:
        rc = _command().main(args=argv, prog_name="servesim", standalone_mode=False)
    except usage as e:
        if type(e).__name__ == "NoArgsIsHelpError" or (not argv and argv is not None):
            return 2
        msg = " ".join(e.format_message().split())  # type: ignore[attr-defined]
        ctx = getattr(e, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "servesim"
        err.print(f"[bold red]error:[/] {safe(msg)} (see {safe(cmd)} --help)", highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        err.print("aborted", highlight=False)
        return 130
    except ServesimError as e:  # anything that slipped past a command's own handling
        err.print(f"[bold red]error:[/] {safe(' '.join(str(e).split()))}", highlight=False, soft_wrap=True)
        return 2
    return int(rc or 0) if isinstance(rc, int) else 0


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()

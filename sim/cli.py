"""The `servesim` command line (Typer). User mistakes print one line on stderr and exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
            res = sim.run(sc, progress=progress_cb)
        finally:
            if bar is not None:
                bar.stop()
        d = out_dir or Path("runs") / sc.name
        if no_plots:
            from sim import plots

            plots.save_all = lambda *a, **k: []  # type: ignore[assignment]
        res.save(d)
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(
        summary_table(
            res.summary,
            f"{sc.name}: {sc.model_spec.name} on {sc.cluster.instances} x {sc.cluster.tp} x {sc.gpu_spec.name}",
        )
    )
    out.print(f"wrote {d}/ (requests.parquet, timeline.parquet, summary.json, plots/)")


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Write the scenario JSON schema (for editors and validation)."""
    from sim.scenario import scenario_json_schema

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
        from policies.registry import ROUTERS, SCHEDULERS
        from sim.costmodel import COST_MODELS

        for c in ("family", "kind", "what it does"):
            t.add_column(c)
        for fam, reg in (("scheduler", SCHEDULERS), ("router", ROUTERS), ("cost_model", COST_MODELS)):
            for e in reg.entries.values():
                t.add_row(fam, e.kind, e.doc)
    elif what == "traces":
        from sim.traces import trace_names

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
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Price one iteration and show its breakdown by operator."""
    from sim.engine import build_cost_model
    from sim.scenario import load_scenario

    try:
        if batch_size < 1 or prefill_tokens < 0 or context_tokens < 0:
            raise ServesimError("--batch-size must be >= 1, token counts >= 0")
        sc = load_scenario(
            {
                "model": model,
                "hardware": hardware,
                "cluster": {"tp": tp},
                "cost_model": {"kind": cost_model},
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


def main() -> None:
    try:
        app()
    except ServesimError as e:  # anything that slipped past a command's own handling
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""`servesim calibrate ...` (measure, import-vidur, fit, serve-cpu) and `servesim fidelity`.

Mounted on the main app by `sim.tools.cli`; user mistakes print one line and exit 2, like every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sim.errors import ServesimError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure kernels into tables, import measured tables, fit measured iterations into a profile.",
)
out = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def load_model(name: str) -> Any:
    """A catalogue model name, or a YAML file with an inline ModelSpec (as `calibrate measure` writes)."""
    from hwprofiles import ModelSpec, catalog

    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return _spec_file(p, ModelSpec)
    return catalog.model(name)


def work_estimate(spec: Any, tp: int, dtype: str, device: str) -> str:
    """What `measure` is about to allocate and roughly how long it takes, said before it starts: the weights of
    one layer plus the LM head at full size (tiny or not), which is what makes a large model slow on a CPU."""
    h, d = spec.hidden_size, spec.head_dim
    layer = h * (spec.num_heads * d) * 2 + 2 * h * (spec.num_kv_heads * d) + 3 * h * spec.intermediate_size
    params = layer / tp + spec.vocab_size * h / tp
    nbytes = params * (4 if dtype == "fp32" else 2)
    gb = nbytes / 1e9
    if device.startswith("cuda"):
        how = "a GPU measures this in seconds to a few minutes"
    elif params < 2e8:
        how = "expect seconds on a CPU"
    else:
        how = "expect minutes on a CPU (--tiny shrinks the grid of shapes, not the layer)"
    return (
        f"measuring {spec.name}: one layer + LM head = {params / 1e6:.0f} M parameters, {gb:.1f} GB in {dtype}; {how}"
    )


def load_gpu(name: str) -> Any:
    """A catalogue GPU name, or a YAML file with an inline GPUSpec (e.g. a measured `device.yaml`)."""
    from hwprofiles import GPUSpec, catalog

    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return _spec_file(p, GPUSpec)
    return catalog.gpu(name)


def _spec_file(p: Path, cls: Any) -> Any:
    import yaml
    from pydantic import ValidationError

    if not p.is_file():
        raise ServesimError(f"{p}: file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
        data.pop("num_params", None)
        return cls.model_validate(data)
    except (ValidationError, yaml.YAMLError) as e:
        raise ServesimError(f"{p}: not a {cls.__name__}: {' '.join(str(e).splitlines()[:3])}") from None


@app.command()
def measure(
    model: Annotated[str, typer.Option(help="model name, or a YAML file with an inline ModelSpec")],
    out_dir: Annotated[Path, typer.Option("--out", help="table directory to write")],
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N")] = "cpu",
    tp: Annotated[int, typer.Option(help="shard shapes as one GPU of a tp-way group")] = 1,
    dtype: Annotated[str | None, typer.Option(help="fp32 | bf16 | fp16 (default: bf16 on GPU, fp32 on CPU)")] = None,
    tiny: Annotated[
        bool,
        typer.Option(
            "--tiny",
            help="CI-sized grid: seconds on a CPU for a small model (under ~1B parameters); larger models still "
            "build full-size layers, so an 8B model takes minutes and several GB (the estimate is printed first)",
        ),
    ] = False,
    max_tokens: Annotated[int | None, typer.Option(help="largest token count / prefill chunk")] = None,
    max_batch: Annotated[int | None, typer.Option(help="largest decode batch")] = None,
    max_context: Annotated[int | None, typer.Option(help="largest context for attention")] = None,
    reps: Annotated[int | None, typer.Option(help="timed samples per point (median kept)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's)")] = None,
    clock: Annotated[str, typer.Option(help="CPU only: thread (CPU time, robust to busy machines) | wall")] = "thread",
    collective_workers: Annotated[
        int, typer.Option(help="all-reduce workers (0: every GPU when >= 2 are visible; on CPU, gloo)")
    ] = 0,
    seed: Annotated[int, typer.Option(help="seed of the random weights and inputs")] = 0,
) -> None:
    """Time the model's operators on this machine and write tables + provenance (+ device.yaml)."""
    from calibrate.harness import Plan
    from calibrate.harness import measure as run_measure

    try:
        if tp < 1 or (reps is not None and reps < 1):
            raise ServesimError("--tp and --reps must be >= 1")
        if dtype is not None and dtype not in ("fp32", "bf16", "fp16"):
            raise ServesimError(f"--dtype must be fp32, bf16 or fp16, not {dtype!r}")
        if clock not in ("thread", "wall"):
            raise ServesimError(f"--clock must be thread or wall, not {clock!r}")
        if not (device == "cpu" or device.startswith("cuda")):
            raise ServesimError(f"--device must be cpu or cuda[:N], not {device!r}")
        plan = Plan.tiny() if tiny else Plan()
        for name, v in (("max_tokens", max_tokens), ("max_batch", max_batch), ("max_context", max_context)):
            if v is not None:
                if v < 1:
                    raise ServesimError(f"--{name.replace('_', '-')} must be >= 1")
                setattr(plan, name, v)
        if reps is not None:
            plan.reps = reps
        plan.clock = clock
        plan.collective_workers = collective_workers
        spec = load_model(model)
        err.print(
            work_estimate(spec, tp, dtype or ("bf16" if device.startswith("cuda") else "fp32"), device), highlight=False
        )
        d = run_measure(
            spec, out_dir, device=device, tp=tp, dtype=dtype, plan=plan, threads=threads, seed=seed, log=out.print
        )
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(f"wrote {d}/ (operators.csv, attention.csv, spread.csv, provenance.yaml, device.yaml)")
    out.print(f"use it: cost_model: {{kind: table, tables: {d}}} with hardware: the GPU, or {d}/device.yaml inline")


@app.command("import-vidur")
def import_vidur(
    src: Annotated[Path, typer.Argument(help="Vidur profiling directory (compute/<gpu>/..., network/...)")],
    out_dir: Annotated[Path, typer.Option("--out", help="where to write one table directory per GPU")] = Path(
        "measured"
    ),
    gpu_map: Annotated[
        list[str] | None, typer.Option("--gpu", help="map a Vidur GPU folder to a catalogue name: a100=a100-80g")
    ] = None,
    network_setup: Annotated[str, typer.Option(help="network/<gpu>_<setup> folders to import")] = "dgx",
) -> None:
    """Convert Vidur-format operator and collective CSVs into servesim table directories."""
    from calibrate.vidur import import_vidur as run_import

    try:
        mapping = {}
        for item in gpu_map or []:
            if "=" not in item:
                raise ServesimError(f"--gpu expects vidur_name=catalogue_name, found {item!r}")
            k, v = item.split("=", 1)
            mapping[k.strip()] = v.strip()
        if not src.is_dir():
            raise ServesimError(f"{src}: directory not found")
        written = run_import(src, out_dir, mapping, network_setup)
    except ServesimError as e:
        _fail(str(e))
        return
    for gpu, d in written.items():
        out.print(f"{gpu}: {d}/")
    out.print("use one: cost_model: {kind: table, tables: DIR} (or kind: roofline, tables: DIR for learned curves)")


@app.command()
def fit(
    measurements: Annotated[Path, typer.Option(help="CSV: prefill_tokens,batch_size,context_tokens,time_ms")],
    model: Annotated[str, typer.Option(help="model name, or a YAML file with an inline ModelSpec")],
    hardware: Annotated[str, typer.Option(help="GPU name, or a YAML file with an inline GPUSpec")],
    out_path: Annotated[Path, typer.Option("--out", help="profile YAML to write")],
    tp: Annotated[int, typer.Option(help="tensor-parallel degree of the measured engine")] = 1,
    kind: Annotated[str, typer.Option(help="base cost model: roofline | table")] = "roofline",
    tables: Annotated[Path | None, typer.Option(help="measured-table directory (default: shipped)")] = None,
    efficiency: Annotated[str, typer.Option(help="curves | constant")] = "curves",
    params: Annotated[str | None, typer.Option(help="comma-separated parameters to fit (default: a safe set)")] = None,
    test: Annotated[Path | None, typer.Option(help="held-out measurements CSV to report errors on")] = None,
) -> None:
    """Fit engine-level overheads and efficiency scales to measured iterations; write a profile."""
    from calibrate.fit import fit_profile, read_measurements, row_errors, write_profile
    from sim.core.registry import COST_MODELS

    try:
        if tp < 1:
            raise ServesimError("--tp must be >= 1")
        fittable = [k for k in COST_MODELS.kinds() if COST_MODELS.caps(k).fits_profile]
        if kind not in fittable:
            raise ServesimError(f"--kind must be {' or '.join(fittable)}, not {kind!r}")
        if efficiency not in ("curves", "constant"):
            raise ServesimError(f"--efficiency must be curves or constant, not {efficiency!r}")
        rows = read_measurements(measurements)
        held = read_measurements(test) if test else None
        spec, gpu = load_model(model), load_gpu(hardware)
        base: dict[str, Any] = {"kind": kind, "efficiency": efficiency}
        if tables is not None:
            base["tables"] = str(tables.resolve())
        free = [p.strip() for p in params.split(",") if p.strip()] if params else None
        profile, errs, fitter = fit_profile(
            rows, spec, gpu, tp, base=base, base_dir=Path.cwd(), free=free, source=str(measurements)
        )
        test_errs = row_errors(fitter.cost(profile.params), held) if held is not None else None
        if test_errs is not None:
            profile.fit["test_rows"] = len(test_errs)
            profile.fit["test_mape_pct"] = float(test_errs["error_pct"].abs().mean())
        write_profile(profile, out_path)
    except ServesimError as e:
        _fail(str(e))
        return
    out.print(_rows_table(errs, f"fit: {spec.name} on {tp} x {gpu.name} ({kind} base)"))
    if test_errs is not None:
        out.print(_rows_table(test_errs, "held-out rows"))
    f = profile.fit
    out.print(
        f"MAPE {f['mape_before_pct']:.1f}% before the fit -> {f['mape_pct']:.1f}% (max {f['max_ape_pct']:.1f}%)"
        + (f"; held-out MAPE {f['test_mape_pct']:.1f}%" if "test_mape_pct" in f else "")
    )
    out.print("parameters: " + ", ".join(f"{k}={v:.4g}" for k, v in profile.params.model_dump().items()))
    if f["at_bounds"]:
        out.print(f"[yellow]at their bounds:[/] {', '.join(f['at_bounds'])}")
    out.print(f"wrote {out_path} (cost_model: {{kind: {kind}, profile: {out_path.name}}} or estimate --profile)")


def _rows_table(errs: Any, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for c in ("prefill", "batch", "context", "measured ms", "predicted ms", "error"):
        t.add_column(c, justify="right")
    for r in errs.itertuples(index=False):
        t.add_row(
            str(r.prefill_tokens),
            str(r.batch_size),
            str(r.context_tokens),
            f"{r.time_ms:.3f}",
            f"{r.predicted_ms:.3f}",
            f"{r.error_pct:+.1f}%",
        )
    return t


def fidelity(
    out_dir: Annotated[Path, typer.Option("--out", help="report directory")] = Path("runs/fidelity"),
    cpu: Annotated[bool, typer.Option("--cpu/--no-cpu", help="include the CPU real run (minutes)")] = True,
    quick: Annotated[bool, typer.Option("--quick", help="smaller sweeps and workload")] = False,
    requests: Annotated[int, typer.Option(help="requests in the CPU real run")] = 150,
    time_scale: Annotated[float, typer.Option(help="arrival-gap multiplier of the CPU workload")] = 0.5,
) -> None:
    """Measure how close the cost model and the simulator come to measured kernels and a real run."""
    from calibrate.fidelity import run_report, to_markdown

    try:
        if requests < 1 or time_scale <= 0:
            raise ServesimError("--requests must be >= 1 and --time-scale > 0")
        report = run_report(
            out_dir,
            cpu=cpu,
            quick=quick,
            num_requests=requests if not quick else min(requests, 60),
            time_scale=time_scale,
            log=lambda m: err.print(m, highlight=False),
        )
    except ServesimError as e:
        _fail(str(e))
        return
    from rich.markdown import Markdown

    out.print(Markdown(to_markdown(report)))
    out.print(f"wrote {out_dir}/report.md, report.json and the raw rows")


# observed per-request logs: `calibrate fit-run`; `validate` and `run --profile` are mounted by sim.tools.cli
from calibrate.cli_observed import fit_run_cmd, overlay_overrides, validate  # noqa: E402,F401

app.command("fit-run")(fit_run_cmd)

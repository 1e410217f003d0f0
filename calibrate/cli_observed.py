"""`servesim calibrate fit-run` and `servesim validate`: observed per-request logs against the simulator.

Mounted by `calibrate.cli` (fit-run) and `sim.tools.cli` (validate); user mistakes print one line, exit 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sim.errors import ServesimError

out = Console()
err = Console(stderr=True)


def _fail(msg: str) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def overlay_overrides(path: Path) -> list[str]:
    """A fit-run profile as `a.b=value` overrides (imported lazily: the CLI starts without scipy)."""
    from calibrate.fit_run import overlay_overrides as read

    return read(path)


def scenario_from_meta(run: Any, hardware: str | None) -> dict[str, Any]:
    """A scenario for a log with engine arguments (LLMServingSim's meta.json) when no --scenario is given."""
    from hwprofiles import catalog

    hf = str(run.meta.get("model") or "")
    names = [n for n in catalog.model_names() if catalog.model(n).hf_id.lower() == hf.lower()]
    if not names:
        raise ServesimError(f"{run.source}: the log names no catalogue model ({hf or 'none'}); give --scenario")
    if hardware is None:
        raise ServesimError(f"{run.source}: the log does not name its GPU; give --scenario or --hardware")
    m = run.meta
    return {
        "name": f"observed-{names[0]}",
        "model": names[0],
        "hardware": hardware,
        "workload": {
            "num_requests": 1,
            "arrival": {"kind": "poisson", "rate": 1},
            "lengths": {"kind": "fixed", "prompt": 1, "output": 1},
        },
        "cluster": {"tp": int(m.get("tensor_parallel_size", 1))},
        "scheduler": {
            "kind": "sarathi",
            "max_num_seqs": int(m.get("max_num_seqs", 256)),
            "token_budget": int(m.get("max_num_batched_tokens", 2048)),
        },
    }


def _base(
    observed: Path, scenario: Path | None, hardware: str | None, profile: Path | None, set_: list[str] | None
) -> tuple[Any, Any]:
    from calibrate.fit_run import overlay_overrides
    from calibrate.observed import read_observed
    from sim.config.scenario import load_scenario

    run = read_observed(observed)
    overrides = (overlay_overrides(profile) if profile is not None else []) + list(set_ or [])
    if scenario is not None:
        return run, load_scenario(scenario, overrides)
    return run, load_scenario(scenario_from_meta(run, hardware), overrides)


def _ms(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * 1000:.2f}"


def compare_table(cmp: dict[str, Any], title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for c in ("metric", "stat", "measured ms", "simulated ms", "error", "|error|"):
        t.add_column(c, justify="right" if c not in ("metric", "stat") else "left")
    for m, stats in cmp.items():
        for s, v in stats.items():
            e = v["error_pct"]
            t.add_row(
                m.upper(),
                s,
                _ms(v["measured_s"]),
                _ms(v["simulated_s"]),
                "-" if not math.isfinite(e) else f"{e:+.1f}%",
                "-" if not math.isfinite(e) else f"{abs(e):.1f}%",
            )
    return t


def validate(
    observed: Annotated[Path, typer.Option(help="per-request log: requests.jsonl (or its dir), vLLM bench JSON, CSV")],
    scenario: Annotated[Path, typer.Option(help="scenario YAML of the engine and hardware (workload is replaced)")],
    profile: Annotated[Path | None, typer.Option(help="overlay from `calibrate fit-run` to apply first")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: a.b=VALUE (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Replay an observed run and print measured vs simulated mean/p50/p90/p99 of TTFT, TPOT, ITL, E2E."""
    from calibrate.replay import compare, replay_once

    try:
        run, sc = _base(observed, scenario, None, profile, set_)
        simd = replay_once(run, sc)
        cmp = compare(run, simd)
    except ServesimError as e:
        _fail(str(e))
        return
    if as_json:
        doc = {
            "observed": run.source,
            "format": run.fmt,
            "requests": len(run),
            "failed_in_log": run.failed,
            "simulated_completed": simd.completed,
            "replay": "closed_loop" if run.closed_loop else "open_loop",
            "metrics": cmp,
        }
        print(_dumps(doc))
        return
    mode = f"closed loop, {run.concurrency} clients" if run.closed_loop else "open loop"
    out.print(compare_table(cmp, f"{run.source} ({run.fmt}, {len(run)} requests, {mode}) vs {sc.name}"))
    out.print(f"simulated: {simd.completed} of {len(run)} completed")


def _dumps(doc: Any) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    return json.dumps(clean(doc))


def expand_observed(paths: list[Path]) -> list[Path]:
    """The logs named by `--observed`: files and run directories as given; a directory without a
    requests.jsonl of its own stands for the runs inside it (sub-directories with requests.jsonl, and
    .jsonl / .json / .csv files), in name order."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir() and not (p / "requests.jsonl").is_file():
            found = sorted(
                c
                for c in p.iterdir()
                if (c.is_dir() and (c / "requests.jsonl").is_file())
                or (c.is_file() and c.suffix in (".jsonl", ".json", ".csv"))
            )
            if not found:
                raise ServesimError(f"{p}: no observed runs inside (requests.jsonl folders, .jsonl/.json/.csv logs)")
            out.extend(found)
        else:
            out.append(p)
    return out


def _pairs(
    observed: list[Path], scenarios: list[Path], hardware: str | None, set_: list[str] | None
) -> list[tuple[Any, Any]]:
    """(run, scenario) per observed log: one --scenario for all, one per log, or none (each from its meta). A
    means CSV (`calibrate.observed_means`) is one run per line, each on that log's scenario (which it needs)."""
    from calibrate.observed_means import is_means_csv, read_means_csv
    from sim.config.scenario import load_scenario

    logs = expand_observed(observed)
    if len(scenarios) not in (0, 1, len(logs)):
        raise ServesimError(
            f"--scenario: expected one for all {len(logs)} observed runs or one per run, found {len(scenarios)}"
        )
    pick: list[Path | None] = [*scenarios] * len(logs) if len(scenarios) == 1 else [*scenarios] or [None] * len(logs)
    out: list[tuple[Any, Any]] = []
    for log, sc in zip(logs, pick, strict=True):
        if not is_means_csv(log):
            out.append(_base(log, sc, hardware, None, set_))
            continue
        if sc is None:
            raise ServesimError(f"{log}:1: a means CSV names no model or GPU; give --scenario")
        base = load_scenario(sc, list(set_ or []))
        out.extend((run, base) for run in read_means_csv(log))
    kinds = {bool(run.means_only) for run, _ in out}
    if len(kinds) > 1:
        raise ServesimError(
            "--observed: means-only runs (a means CSV) and per-request logs are fitted by different methods; "
            "fit them separately"
        )
    return out


def fit_run_cmd(
    observed: Annotated[
        list[Path],
        typer.Option(
            help="per-request log: requests.jsonl (or its dir), vLLM bench JSON, CSV; or a means CSV "
            "(clients,prompt_tokens,output_tokens,ttft_s,tpot_s: one closed loop per line); repeatable, or a folder "
            "of runs: one fit over all of them"
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", help="profile overlay YAML to write")],
    scenario: Annotated[
        list[Path] | None,
        typer.Option(help="scenario YAML (one for all runs, or one per --observed; default: from each log's meta)"),
    ] = None,
    hardware: Annotated[str | None, typer.Option(help="GPU name, when there is no --scenario")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="free parameter path=lo:hi (repeatable; default: fields with fit_bounds)")
    ] = None,
    max_evals: Annotated[
        int,
        typer.Option(
            help="most evaluations the fit may run (each replays every observed run once), the fit-quality "
            "replays (one per term) included; per-request logs only (a means CSV: 1 + terms short replays per run, "
            "up to 3 chord replays per term set)"
        ),
    ] = 60,
    prior: Annotated[
        float,
        typer.Option(
            help="tie-breaker towards the scenario's values (0: none; see calibrate.fit_run.PRIOR; per-request "
            "logs only: a means CSV uses calibrate.fit_linear.PRIOR)"
        ),
    ] = 0.01,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: a.b=VALUE (repeatable)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no per-evaluation log")] = False,
) -> None:
    """Fit engine terms so replays of observed runs match their TTFT/TPOT/E2E; write a profile overlay. Several
    runs of one engine on one GPU (TP sizes, loads) are fitted together with one set of values."""
    from calibrate.fit_means import fit_means
    from calibrate.fit_run import fit_runs, overlay, parse_param, write_overlay

    try:
        if max_evals < 1:
            raise ServesimError("--max-evals must be >= 1")
        if not (prior >= 0 and math.isfinite(prior)):
            raise ServesimError(f"--prior: expected a finite number >= 0, found {prior}")
        pairs = _pairs(observed, list(scenario or []), hardware, set_)
        explicit = [parse_param(p) for p in param or []]
        say = None if quiet else (lambda m: err.print(m, highlight=False))
        if pairs[0][0].means_only:  # one mean TTFT / TPOT per run: the linearised fit (calibrate.fit_means)
            res = fit_means(pairs, explicit or None, log=say)
        else:
            res = fit_runs(pairs, explicit or None, max_evals=max_evals, log=say, prior=prior)
        scen = [str(s) for s in scenario or []]
        doc = overlay(res, [run for run, _ in pairs], ", ".join(scen) if scen else None)
        write_overlay(doc, out_path)
    except ServesimError as e:
        _fail(str(e))
        return
    for (run, _), before, after in zip(pairs, res.before, res.after, strict=True):
        out.print(compare_table(before, f"{run.source}: before the fit"))
        out.print(compare_table(after, f"{run.source}: after the fit (on the fitted run itself: not a validation)"))
    out.print("fitted: " + ", ".join(f"{k}={v:.4g}" for k, v in res.values.items()))
    _print_notes(res)
    out.print(
        f"{len(pairs)} run(s), {res.evaluations} simulations in {res.wall_s:.1f} s; wrote {out_path} "
        f"(servesim run S --profile {out_path})"
    )


def _print_notes(res: Any) -> None:
    """What the fit did beyond the values: terms on a bound, terms not fitted, the preset kept and why, and the
    term choice (the linearised fit's leave-one-out scores, or the search's identifiability summary)."""
    from calibrate.fit_quality import summary_lines

    means = "loo" in res.diagnosis  # the linearised fit (calibrate.fit_means) puts a term on a bound back
    if res.at_bounds:
        label = "landed on a bound, preset kept" if means else "at their bounds"
        out.print(f"[yellow]{label}:[/] {', '.join(res.at_bounds)}")
    if means and res.diagnosis.get("outside_bounds"):
        outside = ", ".join(res.diagnosis["outside_bounds"])
        out.print(f"[yellow]not fitted, scenario value outside its bounds:[/] {outside}")
    if res.kept_preset:
        out.print(f"[yellow]kept the preset:[/] {', '.join(res.kept_preset)}")
    if means:  # the linearised fit: leave-one-out scores (median |error| %, TPOT and E2E)
        scores = ", ".join(f"{k or 'preset'} {v:.2f}" for k, v in res.diagnosis["loo"].items() if v is not None)
        out.print(f"leave-one-out: {scores}; freed: {', '.join(res.diagnosis['chosen']) or 'none'}")
    else:
        for line in summary_lines(res.diagnosis):
            out.print(line, highlight=False)

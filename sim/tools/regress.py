"""`servesim regress`: run a set of scenarios and compare their summary metrics with a stored baseline.

Runs are deterministic (seeded streams, no global RNG), so a baseline can be exact; the tolerance is
for deliberate model changes and for last-digit float differences between platforms. A scenario is
keyed by its file name without `.yaml`, so adding one to the set is adding a file; regenerate with

    servesim regress scenarios/regression --baseline scenarios/regression/baseline.json --update
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from sim.errors import ServesimError

FORMAT = 1
# (summary section, key, statistics): the metrics a regression compares, flattened to "key.stat"
LATENCIES = ("ttft_s", "tpot_s", "e2el_s", "itl_s", "queue_delay_s")
LATENCY_STATS = ("mean", "p50", "p99")
THROUGHPUT = ("requests_per_s", "output_tokens_per_s", "goodput_rps", "slo_attainment")
COUNTS = ("arrived", "completed", "rejected", "in_flight", "preemptions")
REGENERATE = "servesim regress scenarios/regression --baseline scenarios/regression/baseline.json --update"


def parse_tolerance(text: str | float) -> float:
    """'2%' -> 0.02; a bare number is a fraction ('0.02'); must be >= 0."""
    s = str(text).strip()
    try:
        v = float(s[:-1].strip()) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise ServesimError(f"--tolerance {text!r}: expected a percentage like 2% or a fraction like 0.02") from None
    if not math.isfinite(v) or v < 0:
        raise ServesimError(f"--tolerance {text!r}: must be a finite value >= 0")
    return v


def flatten(summary: dict[str, Any]) -> dict[str, float]:
    """The compared metrics of one run's summary, as {"ttft_s.p99": value, ...} (NaN where undefined)."""
    out: dict[str, float] = {}
    for k in LATENCIES:
        m = summary["metrics"][k]
        for s in LATENCY_STATS:
            v = m.get(s)
            out[f"{k}.{s}"] = math.nan if v is None else float(v)
    for k in THROUGHPUT:
        v = summary["throughput"][k]
        out[k] = math.nan if v is None else float(v)
    for k in COUNTS:
        out[k] = float(summary["counts"][k])
    return out


def find_scenarios(paths: Iterable[str | Path]) -> list[Path]:
    """YAML files named directly, and every `*.yaml` / `*.yml` in named directories (sorted, not recursive)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml") and x.is_file())
        elif p.is_file():
            found.append(p)
        else:
            raise ServesimError(f"{p}: no such file or directory")
    if not found:
        raise ServesimError(f"no scenario files (*.yaml) in {', '.join(map(str, paths)) or 'the arguments'}")
    keys: dict[str, Path] = {}
    for f in found:
        if f.stem in keys and keys[f.stem].resolve() != f.resolve():
            raise ServesimError(f"two scenarios share the name {f.stem!r}: {keys[f.stem]} and {f}")
        keys[f.stem] = f
    return list(keys.values())


def run_scenario(path: Path) -> dict[str, float]:
    import sim

    return flatten(sim.run(path).summary)


def load_baseline(path: Path) -> dict[str, dict[str, float]]:
    """{scenario: {metric: value}} from a baseline file (None in JSON stands for NaN)."""
    try:
        data = json.loads(path.read_text())
        scen = data["scenarios"]
        return {
            name: {k: math.nan if v is None else float(v) for k, v in entry["metrics"].items()}
            for name, entry in scen.items()
        }
    except FileNotFoundError:
        raise ServesimError(f"{path}: no baseline; create it with --update") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ServesimError(f"{path}: not a servesim regress baseline ({type(e).__name__}: {e})") from None


def _json_value(k: str, v: float) -> float | int | None:
    if math.isnan(v):
        return None
    return int(v) if k in COUNTS else v


def write_baseline(
    path: Path, runs: dict[str, tuple[Path, dict[str, float]]], keep: dict[str, Any], command: str = REGENERATE
) -> None:
    """Write the runs (and `keep`: entries of scenarios not run this time) with a stable key order."""
    scen: dict[str, Any] = dict(keep)
    for name, (file, metrics) in runs.items():
        scen[name] = {"file": file.name, "metrics": {k: _json_value(k, v) for k, v in metrics.items()}}
    data = {"format": FORMAT, "regenerate": command, "scenarios": {k: scen[k] for k in sorted(scen)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def relative_change(base: float, now: float) -> float:
    """(now − base)/|base|; 0 when equal (NaN equals NaN), inf when a zero or NaN became something else."""
    if base == now or (math.isnan(base) and math.isnan(now)):
        return 0.0
    if math.isnan(base) or math.isnan(now) or base == 0:
        return math.inf
    return (now - base) / abs(base)


@dataclass
class Row:
    scenario: str
    metric: str
    baseline: float | None  # None: no baseline value
    now: float | None  # None: not produced this time
    change: float
    failed: bool


@dataclass
class Report:
    """The comparison of one `regress` invocation: a row per metric that differs from the baseline."""

    tolerance: float
    baseline: dict[str, dict[str, float]]
    now: dict[str, dict[str, float]]
    rows: list[Row] = field(default_factory=list)
    updated: bool = False  # the baseline was rewritten: rows show what changed, nothing fails

    @property
    def scenarios(self) -> list[str]:
        return list(self.now)

    @property
    def not_run(self) -> list[str]:
        """In the baseline but not among the scenarios run (not a failure: a subset may be run)."""
        return sorted(set(self.baseline) - set(self.now))

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def compare(baseline: dict[str, dict[str, float]], now: dict[str, dict[str, float]], tolerance: float) -> Report:
    """Rows for every metric that differs (or has no counterpart); `failed` marks changes beyond tolerance."""
    rep = Report(tolerance, baseline, now)
    for name, metrics in now.items():
        base = baseline.get(name)
        if base is None:
            rep.rows.append(Row(name, "(no baseline)", None, None, math.inf, True))
            continue
        for k in [*metrics, *sorted(set(base) - set(metrics))]:
            b, n = base.get(k), metrics.get(k)
            if b is None or n is None:
                rep.rows.append(Row(name, k, b, n, math.inf, True))
                continue
            ch = relative_change(b, n)
            if ch != 0.0:
                rep.rows.append(Row(name, k, b, n, ch, abs(ch) > tolerance))
    return rep


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isnan(v):
        return "nan"
    return f"{v:.0f}" if v == int(v) and abs(v) < 1e15 else f"{v:.6g}"


def _fmt_change(ch: float) -> str:
    return "new/gone" if math.isinf(ch) else f"{ch:+.3%}"


def _status(rep: Report, r: Row) -> str:
    if rep.updated:
        return "[cyan]updated[/]"
    return "[bold red]FAIL[/]" if r.failed else "[yellow]within[/]"


def table(rep: Report, verbose: bool = False) -> Table:
    """scenario / metric / baseline / now / change: the differing metrics (every metric when `verbose`),
    and one line for each scenario that matches exactly."""
    t = Table(title=f"servesim regress (tolerance ±{rep.tolerance:.2%})", title_justify="left")
    t.add_column("scenario", overflow="fold")
    t.add_column("metric", overflow="fold")
    for c in ("baseline", "now", "change"):
        t.add_column(c, justify="right")
    t.add_column("")
    by_key = {(r.scenario, r.metric): r for r in rep.rows}
    for name, metrics in rep.now.items():
        rows = [r for r in rep.rows if r.scenario == name]
        if verbose and name in rep.baseline:
            for k, n in metrics.items():
                r = by_key.get((name, k))
                b = _fmt(rep.baseline[name].get(k))
                if r is None:
                    t.add_row(name, k, b, _fmt(n), "=", "")
                else:
                    t.add_row(name, k, b, _fmt(n), _fmt_change(r.change), _status(rep, r))
            rows = [r for r in rows if r.metric not in metrics]
        elif not rows:
            t.add_row(name, f"all {len(metrics)} metrics", "", "", "=", "[green]ok[/]")
        for r in rows:
            t.add_row(name, r.metric, _fmt(r.baseline), _fmt(r.now), _fmt_change(r.change), _status(rep, r))
    return t


def verdict(rep: Report) -> str:
    n_fail = len(rep.failures)
    scen_fail = len({r.scenario for r in rep.failures})
    msg = (
        f"{len(rep.scenarios)} scenarios: {scen_fail} with changes beyond ±{rep.tolerance:.2%} ({n_fail} metrics)"
        if n_fail
        else f"{len(rep.scenarios)} scenarios match the baseline within ±{rep.tolerance:.2%}"
    )
    if rep.not_run:
        msg += f"; in the baseline but not run: {', '.join(rep.not_run)}"
    if n_fail:
        msg += "\nif the change is deliberate, accept it: rerun with --update and commit the baseline"
    return msg


def regress(
    paths: Iterable[str | Path],
    baseline: str | Path,
    tolerance: str | float = "2%",
    update: bool = False,
    progress: Any = None,
) -> tuple[Report, dict[str, dict[str, float]]]:
    """Run the scenarios, compare with (or, with `update`, rewrite) the baseline; returns (report, metrics).

    `progress(name)` is called before each scenario runs. With `update`, the report is against the old
    baseline (empty if there was none) and nothing fails.
    """
    tol = parse_tolerance(tolerance)
    paths = list(paths)
    files = find_scenarios(paths)
    bpath = Path(baseline)
    old: dict[str, dict[str, float]] = {}
    if not update or bpath.exists():
        old = load_baseline(bpath)
    import sim

    for f in files:  # validate every file before spending time on runs
        sim.load_scenario(f)
    runs: dict[str, tuple[Path, dict[str, float]]] = {}
    for f in files:
        if progress is not None:
            progress(f.stem)
        runs[f.stem] = (f, run_scenario(f))
    now = {k: v[1] for k, v in runs.items()}
    rep = compare(old, now, tol)
    if update:
        keep = {}
        if bpath.exists():
            keep = {k: v for k, v in json.loads(bpath.read_text())["scenarios"].items() if k not in runs}
        given = " ".join(str(p) for p in paths)
        write_baseline(bpath, runs, keep, f"servesim regress {given} --baseline {bpath} --update")
        rep.updated = True
        for r in rep.rows:
            r.failed = False
    return rep, now


def registered_kinds(family: str = "scheduler") -> list[str]:
    """The kinds registered for a policy family: `scheduler` or `router`."""
    from sim.core.registry import ROUTERS, SCHEDULERS

    return (SCHEDULERS if family == "scheduler" else ROUTERS).kinds()


def uncovered_kinds(paths: Iterable[str | Path], family: str = "scheduler") -> list[str]:
    """Registered kinds of a policy family (`scheduler` or `router`) that no scenario in `paths` uses."""
    import yaml

    used: set[str] = set()
    for f in find_scenarios(paths):
        data = yaml.safe_load(f.read_text()) or {}
        cluster = data.get("cluster") or {}
        sec = data.get("scheduler") if family == "scheduler" else cluster.get("router")
        used.add((sec or {}).get("kind", "fcfs" if family == "scheduler" else "round_robin"))
        for pool in (cluster.get("prefill"), cluster.get("decode")):  # a pool's own scheduler or router counts too
            own = (pool or {}).get(family)
            if isinstance(own, dict) and "kind" in own:
                used.add(own["kind"])
    return [k for k in registered_kinds(family) if k not in used]

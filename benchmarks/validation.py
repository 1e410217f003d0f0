"""servesim against real serving engines: every usable run of `../shared/data/ground-truth/` replayed.

    python benchmarks/validation.py [--quick] [--out benchmarks/results/validation_results.json] \
        [--pcie-topology switch]

(a) presets: the shipped engine preset, nothing fitted to the run; (b) `calibrate fit-run` on some runs and
errors reported only on the others (the split is printed with every table). LLMServingSim's two vLLM runs on
RTX PRO 6000 are fitted one on the other (Llama-3.1-8B -> Qwen3-32B and back); the aiconfigurator silicon rows
(closed loop, `batch_size` clients, fixed isl/osl) are fitted per engine+GPU on the rows with an even
config id and reported on the odd ones (see `benchmarks/validation_silicon.py`). Writes the numbers as JSON
and prints the markdown tables of benchmarks/VALIDATION.md.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calibrate.fit_run import fit_runs, fittable_paths, overlay, overlay_overrides, write_overlay  # noqa: E402
from calibrate.observed import ObservedRun, read_observed  # noqa: E402
from calibrate.replay import compare, replay_once  # noqa: E402
from sim.config.scenario import Scenario, load_scenario  # noqa: E402

GT = ROOT.parent / "shared" / "data" / "ground-truth"
SCEN = ROOT / "benchmarks" / "ground_truth"
RUNS = {  # name: (observed log, scenario of its engine + hardware)
    "Llama-3.1-8B TP1": (GT / "llmservingsim/RTXPRO6000/Llama-3.1-8B", SCEN / "llama31-8b-rtxpro6000.yaml"),
    "Qwen3-32B TP2": (GT / "llmservingsim/RTXPRO6000/Qwen3-32B", SCEN / "qwen3-32b-rtxpro6000.yaml"),
}
# free parameters when the scenario marks none with fit_bounds (engine-level terms of the roofline model)
FALLBACK_PARAMS = [
    ("cost_model.iteration_overhead_s", 0.0, 0.02),
    ("cost_model.layer_overhead_s", 0.0, 2e-4),
    ("cost_model.memory_efficiency", 0.3, 1.0),
    ("cost_model.compute_efficiency", 0.2, 1.0),
]
HEADLINE = ("ttft", "tpot", "e2e")


def free_params(sc: Scenario) -> list[tuple[str, float, float]] | None:
    """None: the scenario's `fit_bounds` fields that the runs inform (`calibrate.fit_run.informed`)."""
    return None if fittable_paths(sc) else FALLBACK_PARAMS


def replay(run: ObservedRun, sc: Scenario) -> dict[str, Any]:
    t = time.perf_counter()
    simd = replay_once(run, sc)  # the wall time now includes writing the replay's trace file
    wall = time.perf_counter() - t
    return {"compare": compare(run, simd), "completed": simd.completed, "requests": len(run), "wall_s": wall}


def mean_errors(cmp: dict[str, Any]) -> dict[str, float]:
    return {m: cmp[m]["mean"]["error_pct"] for m in HEADLINE if m in cmp}


def on_topology(sc: Scenario, topology: str | None) -> Scenario:
    """The scenario with its GPUs in a box of this PCIe topology (`cluster.pcie_topology`); None: as it is. The
    LLMServingSim runs do not record their box's wiring, so `--pcie-topology` shows what each reading gives."""
    if topology is None:
        return sc
    return sc.model_copy(update={"cluster": sc.cluster.model_copy(update={"pcie_topology": topology})})


def llmservingsim(
    max_evals: int, out_dir: Path, fit: bool = True, topology: str | None = None, identify: bool = False
) -> dict[str, Any]:
    runs = {name: (read_observed(log), on_topology(load_scenario(sc), topology)) for name, (log, sc) in RUNS.items()}
    presets = {name: replay(run, sc) for name, (run, sc) in runs.items()}
    fitted: dict[str, Any] = {}
    for fit_on, (run, sc) in runs.items() if fit else ():
        params = free_params(sc)
        res = fit_runs([(run, sc)], params, max_evals=max_evals, identify=identify)
        prof = out_dir / f"profile-{fit_on.split()[0].lower()}.yaml"
        write_overlay(overlay(res, [run], str(RUNS[fit_on][1].relative_to(ROOT))), prof)
        for other, (orun, _) in runs.items():
            if other == fit_on:
                continue  # never report an error on the run we fitted
            applied = on_topology(load_scenario(RUNS[other][1], overlay_overrides(prof)), topology)
            fitted[f"{fit_on} -> {other}"] = {
                "fit_on": fit_on,
                "report_on": other,
                "params": res.values,
                "evaluations": res.evaluations,
                "fit_wall_s": res.wall_s,
                "identifiability": res.diagnosis,
                "frozen": res.frozen,
                **replay(orun, applied),
            }
    joint: dict[str, Any] = {}
    if fit:  # both runs at once: fit quality only (in-sample), what one set of engine + GPU terms can do
        pairs = list(runs.values())
        res = fit_runs(pairs, free_params(pairs[0][1]), max_evals=max_evals, identify=identify)
        joint = {
            "params": res.values,
            "evaluations": res.evaluations,
            "identifiability": res.diagnosis,
            "frozen": res.frozen,
            "in_sample": {name: mean_errors(c) for name, c in zip(runs, res.after, strict=True)},
        }
    return {"presets": presets, "fitted": fitted, "joint_in_sample": joint}


def table(rows: dict[str, Any], title: str) -> str:
    lines = [f"**{title}**", "", "| run | TTFT mean | TPOT mean | E2E mean | TTFT p90 | E2E p90 | completed |"]
    lines.append("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        c = r["compare"]

        def f(m: str, s: str, c: dict[str, Any] = c) -> str:
            e = c.get(m, {}).get(s, {}).get("error_pct", math.nan)
            return "-" if not math.isfinite(e) else f"{e:+.1f}%"

        lines.append(
            f"| {name} | {f('ttft', 'mean')} | {f('tpot', 'mean')} | {f('e2e', 'mean')} | {f('ttft', 'p90')} | "
            f"{f('e2e', 'p90')} | {r['completed']}/{r['requests']} |"
        )
    med = {m: statistics.median(abs(mean_errors(r["compare"])[m]) for r in rows.values()) for m in HEADLINE}
    lines.append("")
    lines.append("median |error| of the means: " + ", ".join(f"{m.upper()} {v:.1f}%" for m, v in med.items()))
    return "\n".join(lines)


def before_after(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Markdown: presets-only errors of the same runs and silicon groups on an earlier tree and on this one."""
    lines = ["**Presets, before -> after** (signed error of the mean)", ""]
    lines += ["| run | TTFT | TPOT | E2E |", "|---|---|---|---|"]
    b, a = before["llmservingsim"]["presets"], after["llmservingsim"]["presets"]
    for name in a:
        eb, ea = mean_errors(b[name]["compare"]), mean_errors(a[name]["compare"])
        lines.append(f"| {name} | " + " | ".join(f"{eb[m]:+.1f}% -> {ea[m]:+.1f}%" for m in HEADLINE) + " |")
    for label, res in (("before", b), ("after", a)):
        med = {m: statistics.median(abs(mean_errors(r["compare"])[m]) for r in res.values()) for m in HEADLINE}
        lines.append(f"| median \\|error\\| {label} | " + " | ".join(f"{med[m]:.1f}%" for m in HEADLINE) + " |")
    if "silicon" in before and "silicon" in after:
        from benchmarks.validation_silicon import _med

        lines += ["", "**Silicon rows, presets, before -> after** (median |error| of the per-row mean)", ""]
        lines += ["| engine + GPU | rows | TTFT | TPOT | E2E |", "|---|---|---|---|---|"]
        for name, g in after["silicon"]["groups"].items():
            gb = before["silicon"]["groups"].get(name)
            if gb is None:
                continue
            cells = " | ".join(f"{_med(gb['presets'], m):.1f}% -> {_med(g['presets'], m):.1f}%" for m in HEADLINE)
            lines.append(f"| {name} | {len(g['presets'])} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer fit evaluations")
    ap.add_argument(
        "--out",
        type=Path,
        help="results JSON (default benchmarks/results/validation_results.json; with --silicon-cross-fit its own "
        "file, benchmarks/results/validation_silicon_cross_fit_results.json, so a cross-fit run never replaces the "
        "tracked results)",
    )
    ap.add_argument("--profiles", type=Path, default=ROOT / "runs" / "validation", help="where fitted profiles go")
    ap.add_argument("--presets-only", action="store_true", help="no fits (e.g. to record a 'before' tree)")
    ap.add_argument("--before", type=Path, help="a results JSON of an earlier tree: print before -> after tables")
    ap.add_argument(
        "--llmservingsim-only", action="store_true", help="the LLMServingSim runs only (presets and fits, ~1 min)"
    )
    ap.add_argument(
        "--pcie-topology",
        choices=["root_complex", "switch"],
        help="the LLMServingSim runs' RTX PRO 6000 box (unrecorded): default the catalogue's (root_complex)",
    )
    ap.add_argument(
        "--identify",
        action="store_true",
        help="LLMServingSim fits: search only the terms each fit's runs can place (calibrate.fit_run `identify`)",
    )
    ap.add_argument(
        "--silicon-fit-only",
        action="store_true",
        help="the silicon rows only: presets and the per engine + GPU fits (no LLMServingSim runs)",
    )
    ap.add_argument(
        "--silicon-cross-fit",
        action="store_true",
        help="the silicon rows per engine + GPU + model: linearised fit, leave-one-out term choice (no LLMServingSim)",
    )
    ap.add_argument("--groups", nargs="+", help="silicon groups only, e.g. 'vllm h200_sxm' 'sglang b200_sxm disagg'")
    ap.add_argument(
        "--cap-cpu-s",
        type=float,
        default=None,
        help="--silicon-cross-fit: CPU seconds one subgroup's fit may use before it is reported as capped "
        "(default validation_silicon_fit.CAP_CPU_S; 0: no cap)",
    )
    ap.add_argument(
        "--all-terms",
        action="store_true",
        help="silicon fits free every `fit_default` term (session 5's terms; same objective, guard)",
    )
    args = ap.parse_args()
    if args.out is None:
        name = "validation_silicon_cross_fit_results.json" if args.silicon_cross_fit else "validation_results.json"
        args.out = ROOT / "benchmarks" / "results" / name
    if args.before is not None:
        print(before_after(json.loads(args.before.read_text()), json.loads(args.out.read_text())))
        return
    args.profiles.mkdir(parents=True, exist_ok=True)
    if args.silicon_cross_fit:
        from benchmarks.validation_silicon_fit import CAP_CPU_S, cross_fit, cross_fit_table

        if args.cap_cpu_s is None:
            args.cap_cpu_s = CAP_CPU_S

        def write(cf: dict[str, Any]) -> None:  # after every subgroup, so a stopped run leaves what it did
            args.out.write_text(json.dumps({"silicon_cross_fit": cf}, indent=1, default=float, allow_nan=True) + "\n")

        res = {"silicon_cross_fit": cross_fit(args.groups, cap_s=args.cap_cpu_s or None, progress=write)}
        write(res["silicon_cross_fit"])
        print(cross_fit_table(res["silicon_cross_fit"]))
        cf = res["silicon_cross_fit"]
        print(f"\n{cf['wall_s']:.0f} s wall, {cf['cpu_s']:.0f} s CPU; wrote {args.out}")
        return
    t0 = time.perf_counter()
    fit = not args.presets_only
    results: dict[str, Any] = {}
    if not args.silicon_fit_only:
        results["llmservingsim"] = llmservingsim(
            20 if args.quick else 60, args.profiles, fit, args.pcie_topology, args.identify
        )
    try:
        from benchmarks.validation_silicon import silicon
    except ImportError:
        silicon = None  # type: ignore[assignment]
    if silicon is not None and not args.llmservingsim_only:
        terms: list[tuple[str, float, float]] | None = [] if args.all_terms else None
        results["silicon"] = silicon(args.quick, args.profiles, fit=fit, groups_only=args.groups, terms=terms)
    results["wall_s"] = time.perf_counter() - t0
    args.out.write_text(json.dumps(results, indent=1, default=float, allow_nan=True) + "\n")
    ls = results.get("llmservingsim", {"presets": {}, "fitted": {}})
    if ls["presets"]:
        print(table(ls["presets"], "LLMServingSim vLLM 0.19 runs, presets (nothing fitted)"))
        print()
    if ls["fitted"]:
        print(table(ls["fitted"], "fit-run on one run, errors on the other (fit -> report)"))
    if ls.get("joint_in_sample"):
        j = ls["joint_in_sample"]
        print("\njoint fit of both runs (in-sample, fit quality only): " + json.dumps(j["params"]))
        for name, e in j["in_sample"].items():
            print(f"  {name}: " + ", ".join(f"{m.upper()} {v:+.1f}%" for m, v in e.items()))
        print("  identifiability: " + json.dumps(j["identifiability"]))
    if "silicon" in results:
        from benchmarks.validation_silicon import silicon_tables

        print()
        print(silicon_tables(results["silicon"]))
    print(f"\n{results['wall_s']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()

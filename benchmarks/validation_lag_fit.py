"""Why the LLMServingSim cross-fit got worse with overlap admission: the fit on one run and the error on the other,
with `serving_engine.overlap_admission` off and on, and each fitted term applied alone to the held-out run.

    python benchmarks/validation_lag_fit.py [--max-evals 60]

Session 11's one-step admission lag (`sim/core/admission.py`, on in the `vllm-v1` preset) moved the held-out
errors of `validation.py --llmservingsim-only` from 7.2 / 2.8 / 4.1 to 9.9 / 4.0 / 5.8 % (TTFT / TPOT / E2E). This
measures which fitted term carries the change. Nothing here is reported on a fitted run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.validation import RUNS, mean_errors  # noqa: E402
from calibrate.fit_run import fit_runs  # noqa: E402
from calibrate.observed import read_observed  # noqa: E402
from calibrate.replay import compare, replay_once  # noqa: E402
from sim.config.scenario import load_scenario  # noqa: E402


def held_out(max_evals: int, lag: bool) -> dict[str, Any]:
    """Per direction: fitted values, the held-out run's errors at the presets, at the fit, and with each term alone."""
    sets = [f"serving_engine.overlap_admission={str(lag).lower()}"]
    runs = {name: (read_observed(log), load_scenario(sc, sets)) for name, (log, sc) in RUNS.items()}
    out: dict[str, Any] = {}
    for fit_on, (run, sc) in runs.items():
        res = fit_runs([(run, sc)], None, max_evals=max_evals, diagnose=False)
        for other, (orun, _) in runs.items():
            if other == fit_on:
                continue
            base = RUNS[other][1]

            def err(extra: list[str], orun: Any = orun, base: Path = base) -> dict[str, float]:
                return mean_errors(compare(orun, replay_once(orun, load_scenario(base, sets + extra))))

            vals = [f"{p}={v!r}" for p, v in res.values.items()]
            out[f"{fit_on} -> {other}"] = {
                "values": res.values,
                "in_sample_after": mean_errors(res.after[0]),
                "presets": err([]),
                "fitted": err(vals),
                "alone": {v.split("=")[0].rsplit(".", 1)[-1]: err([v]) for v in vals},
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-evals", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lag_fit_s12-fit_results.json")
    args = ap.parse_args()
    res = {"lag_off": held_out(args.max_evals, False), "lag_on": held_out(args.max_evals, True)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for lag, dirs in res.items():
        for d, r in dirs.items():
            print(f"{lag} {d}: values " + ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.4g}" for k, v in r["values"].items()))
            for what in ("presets", "fitted"):
                print(f"   {what:8s} " + " / ".join(f"{r[what][m]:+.1f}" for m in ("ttft", "tpot", "e2e")))
            for term, e in r["alone"].items():
                print(f"   {term:28s} alone " + " / ".join(f"{e[m]:+.1f}" for m in ("ttft", "tpot", "e2e")))


if __name__ == "__main__":
    main()

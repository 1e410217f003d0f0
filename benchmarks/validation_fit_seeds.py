"""The LLMServingSim cross-fit's spread over the search's seed: fit on one run, report on the other (as
`validation.py --llmservingsim-only`), once per seed of the scan (`Scenario.seed`, which `fit_search.sobol` draws
from). A held-out number that moves with the seed is a landing point in a valley the fitted run leaves flat, not
information (benchmarks/VALIDATION.md, branch s15-fit).

    python benchmarks/validation_fit_seeds.py [--seeds 0 1 2 3 4] [--identify] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.validation import RUNS, free_params, mean_errors  # noqa: E402
from calibrate.fit_run import fit_runs  # noqa: E402
from calibrate.observed import read_observed  # noqa: E402
from calibrate.replay import compare, replay_once  # noqa: E402
from sim.config.scenario import load_scenario  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--identify", action="store_true", help="search only the terms each run can place")
    ap.add_argument("--max-evals", type=int, default=60)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = {name: (read_observed(log), load_scenario(sc)) for name, (log, sc) in RUNS.items()}
    out: dict[str, list[dict[str, object]]] = {}
    for fit_on, (run, sc) in runs.items():
        for other, (orun, osc) in runs.items():
            if other == fit_on:
                continue  # never report an error on the fitted run
            key = f"{fit_on} -> {other}"
            for seed in args.seeds:
                res = fit_runs(
                    [(run, sc.model_copy(update={"seed": seed}))],
                    free_params(sc),
                    max_evals=args.max_evals,
                    diagnose=False,
                    identify=args.identify,
                )
                sets = [f"{k}={v!r}" for k, v in res.values.items()]
                err = mean_errors(compare(orun, replay_once(orun, load_scenario(osc, sets))))
                rec = {"seed": seed, "values": res.values, "fit_loss": res.runs_cost_after, "held_out": err}
                out.setdefault(key, []).append(rec)
                print(key, seed, {k: round(v, 1) for k, v in err.items()}, f"loss {res.runs_cost_after:.4f}")
    for key, recs in out.items():
        for m in ("tpot", "e2e"):
            v = [float(r["held_out"][m]) for r in recs]  # type: ignore[index]
            print(f"{key} {m}: min {min(v):+.1f} median {statistics.median(v):+.1f} max {max(v):+.1f} %")
    print(f"{time.perf_counter() - t0:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()

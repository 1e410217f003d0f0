"""Before / after of `coverage_disagg.READ_BOUND` on a presets results file without the full run (branch s15-sat).

    python benchmarks/validation_bound_patch.py RESULTS.json BEFORE_OUT.json AFTER_OUT.json

Only the replayed disagg rows whose matching InferenceX items disagree (`coverage_disagg.deployment(...).status ==
"bound"`) depend on the reading: every other row's scenario is built without it. Those rows are replayed with the
reading off (BEFORE_OUT) and on (AFTER_OUT), exactly as `validation_silicon.silicon` replays presets, and written
into copies of RESULTS; the other rows keep RESULTS's values. With the code RESULTS was made with, BEFORE_OUT's
rows equal RESULTS's (printed as `file` / `before`), which checks that nothing else moved."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import coverage_disagg as cd
import pandas as pd

from benchmarks import coverage
from benchmarks.validation_silicon import CSV, _replay, observed_row, scenario_for


def bound_rows(res: dict[str, Any]) -> list[tuple[str, str, pd.Series]]:
    """(group, id, row) of the replayed disagg rows read as `bound`."""
    df = pd.read_csv(CSV).set_index("id", drop=False)
    out = []
    for gname, g in res["silicon"]["groups"].items():
        for rid in g["presets"]:
            row = df.loc[rid]
            if row["mode"] == "disagg" and cd.deployment(coverage.as_disagg(row)).status == "bound":
                out.append((gname, rid, row))
    return out


def main() -> None:
    src, out_before, out_after = (Path(a) for a in sys.argv[1:4])
    res = json.loads(src.read_text())
    t0 = time.time()
    rows = bound_rows(res)
    outs: dict[bool, dict[str, Any]] = {}
    for flag, path in ((False, out_before), (True, out_after)):
        cd.READ_BOUND = flag
        r2 = copy.deepcopy(res)
        for gname, rid, row in rows:
            sc, _ = scenario_for(row)
            assert sc is not None
            r2["silicon"]["groups"][gname]["presets"][rid] = _replay(observed_row(row, sc), sc)
        path.write_text(json.dumps(r2, indent=1))
        outs[flag] = r2
    cd.READ_BOUND = True

    def f(r: dict[str, Any]) -> str:
        return f"{r['ttft']['simulated_s']:.2f}/{r['tpot']['simulated_s'] * 1e3:.1f}"

    for gname, rid, _ in rows:
        a = res["silicon"]["groups"][gname]["presets"][rid]
        b, c = (outs[k]["silicon"]["groups"][gname]["presets"][rid] for k in (False, True))
        print(
            f"{rid[:78]:78s} meas {a['ttft']['measured_s']:.2f}/{a['tpot']['measured_s'] * 1e3:.1f}"
            f"  file {f(a)}  before {f(b)}  after {f(c)}"
            f"  TTFT err {b['ttft']['error_pct']:+.0f} -> {c['ttft']['error_pct']:+.0f} %"
            f"  TPOT err {b['tpot']['error_pct']:+.0f} -> {c['tpot']['error_pct']:+.0f} %"
        )
    print(f"{len(rows)} rows replayed, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

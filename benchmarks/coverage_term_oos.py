"""One serving-engine term on and off, on rows outside coverage.py's draw, at coverage.py's own protocol.

    python benchmarks/coverage_term_oos.py --ids tpot_groups_after.json --backend vllm \
        --field eager_host_per_moe_layer_s --json /tmp/oos.json

`tpot_groups.py` draws 1,000 rows outside coverage.py's stratified 149 but simulates 3 requests per client: its
TTFT weighs the first wave (every client's prompt at once) 3x more than InferenceX's 10 waves do, so it is no TTFT
measure (on its 184 vLLM rows main's signed median TTFT is +1.7 % there, -38.3 % at 10 waves). This script takes
the rows of one backend from a `tpot_groups.py --json` file and simulates each twice with `coverage.simulate`
(the InferenceX protocol, 10 waves): as the tree prices it, and with `--field` set to 0 in its serving engine. It
prints median |error| and signed median of TTFT and TPOT, off -> on, overall, per `coverage.half` of the row's
configuration (the rules of COVERAGE.md were chosen on the fit half's configurations) and per GPU. Nothing is
fitted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov


def _without(field: str) -> Any:
    base = cov.serving_engine

    def engine(row: pd.Series, protocol: str = "inferencex", sglang_first: bool = True) -> dict[str, Any]:
        out = base(row, protocol, sglang_first)
        return out | {field: 0.0} if out else out

    return engine


def run(ids: list[str], field: str) -> pd.DataFrame:
    d = pd.read_csv(cov.CSV).set_index("id", drop=False)
    on_engine, off_engine = cov.serving_engine, _without(field)
    rows = []
    for rid in ids:
        r = d.loc[rid]
        got = {}
        for side, engine in (("on", on_engine), ("off", off_engine)):
            cov.serving_engine = engine
            ttft, tpot = cov.simulate(r)
            got[f"ttft_{side}"] = ttft * 1e3 / r["silicon_ttft_ms"] - 1
            got[f"tpot_{side}"] = tpot * 1e3 / r["silicon_tpot_ms"] - 1
        cov.serving_engine = on_engine
        rows.append(
            {
                "id": rid,
                "half": cov.half(r),
                "gpu": r["system"],
                "clients": int(cov.concurrency(r)),
                "isl": int(r["isl"]),
            }
            | got
        )
    return pd.DataFrame(rows)


def summary(t: pd.DataFrame) -> str:
    def line(name: str, g: pd.DataFrame) -> str:
        med = [g[c].abs().median() * 100 for c in ("ttft_off", "ttft_on", "tpot_off", "tpot_on")]
        sig = [g[c].median() * 100 for c in ("ttft_off", "ttft_on")]
        cells = [f"{m:.1f}%" for m in med] + [f"{s:+.1f}%" for s in sig]
        return f"| {name} | {len(g)} | " + " | ".join(cells) + " |"

    lines = [
        "| group | rows | TTFT off | TTFT on | TPOT off | TPOT on | signed TTFT off | signed TTFT on |",
        "|---|---|---|---|---|---|---|---|",
        line("all", t),
    ]
    lines += [line(f"half = {k}", g) for k, g in t.groupby("half")]  # configurations the rule was chosen on: fit
    lines += [line(f"gpu = {k}", g) for k, g in t.groupby("gpu")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=Path, required=True, help="a tpot_groups.py --json file (its rows)")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--field", default="eager_host_per_moe_layer_s", help="the serving-engine term to switch off")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    ids = [r["id"] for r in json.loads(args.ids.read_text()) if r["backend"] == args.backend]
    t = run(ids, args.field)
    print(summary(t))
    if args.json is not None:
        args.json.write_text(t.round(4).to_json(orient="records"))


if __name__ == "__main__":
    main()

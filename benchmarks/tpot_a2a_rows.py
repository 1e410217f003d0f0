"""The silicon rows whose scenario prices an expert-parallel token exchange (`serving_engine.moe_all2all`): some
pool or cluster with attention_dp > 1 and ep > 1. Only these rows move when the exchange's pricing changes, so a
before/after over many rows need rerun only them (the rest are the same code path).

    python benchmarks/tpot_a2a_rows.py --ids benchmarks/tpot_groups_1000_s7_final_results.json --out /tmp/a2a_ids.json
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


def exchanges(node: Any) -> bool:
    """Whether any mapping inside a scenario dict has attention_dp > 1 together with ep > 1."""
    if isinstance(node, dict):
        if int(node.get("attention_dp", 1) or 1) > 1 and int(node.get("ep", 1) or 1) > 1:
            return True
        return any(exchanges(v) for v in node.values())
    if isinstance(node, list):
        return any(exchanges(v) for v in node)
    return False


def a2a_ids(ids: list[str]) -> list[str]:
    """The ids among `ids` whose InferenceX-protocol scenario has an attention-DP + EP pool."""
    df = pd.read_csv(cov.CSV).set_index("id")
    out = []
    for i in ids:
        row = df.loc[i].copy()
        row["id"] = i
        if exchanges(cov.scenario(row, cov._fixed_workload(1, row))):
            out.append(i)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=Path, required=True, help="a tpot_groups / coverage --json with an `id` per row")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    data = json.loads(a.ids.read_text())
    rows = data if isinstance(data, list) else data["errors"]["per_row"]
    ids = a2a_ids([r["id"] for r in rows])
    a.out.write_text(json.dumps([{"id": i} for i in ids], indent=1))
    print(f"{len(ids)} of {len(rows)} rows price an attention-DP + EP exchange")


if __name__ == "__main__":
    main()

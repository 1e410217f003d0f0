"""The silicon rows whose scenario prices an expert-parallel token exchange (`serving_engine.moe_all2all`): some
pool or cluster with attention_dp > 1 and ep > 1. Only these rows move when the exchange's pricing changes, so a
before/after over many rows need rerun only them (the rest are the same code path).

    python benchmarks/tpot_a2a_rows.py --ids benchmarks/results/tpot_groups_1000_s7_final_results.json \
        --out /tmp/a2a_ids.json

`--deepep`: only the rows whose exchange runs DeepEP's low-latency kernels (`moe_all2all: deepep`, or
`one_sided` over more GPUs than the NVLink domain holds; `alltoall.deepep_ll_s`), the only ones branch s11-moe's
link reading can move. Output rows then carry `inside` (whether every such pool sits inside one NVLink domain).
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
from coverage_compare import per_row

from hwprofiles import catalog
from sim.costmodel.engine import preset


def exchanges(node: Any) -> bool:
    """Whether any mapping inside a scenario dict has attention_dp > 1 together with ep > 1."""
    if isinstance(node, dict):
        if int(node.get("attention_dp", 1) or 1) > 1 and int(node.get("ep", 1) or 1) > 1:
            return True
        return any(exchanges(v) for v in node.values())
    if isinstance(node, list):
        return any(exchanges(v) for v in node)
    return False


def deepep_pools(sc: dict[str, Any], engine: dict[str, Any] | None) -> list[bool]:
    """Per attention-DP + EP pool priced with DeepEP's kernels: whether its GPUs sit inside one NVLink domain."""
    kind = (engine or {}).get("kind")
    method = (engine or {}).get("moe_all2all") or (preset(kind).moe_all2all if kind else "allgather_reducescatter")
    c = sc["cluster"]
    out = []
    for pool in (c, c.get("prefill"), c.get("decode")):
        if not pool or int(pool.get("attention_dp", 1) or 1) < 2 or int(pool.get("ep", 1) or 1) < 2:
            continue
        domain = catalog.gpu(pool.get("hardware") or sc["hardware"]).nvlink_domain
        group = int(pool.get("tp", 1) or 1) * int(pool["attention_dp"])
        if method == "deepep" or (method == "one_sided" and group > domain):
            out.append(group <= domain)
    return out


def a2a_ids(ids: list[str], deepep: bool = False) -> list[dict[str, Any]]:
    """The rows among `ids` whose InferenceX-protocol scenario has an attention-DP + EP pool (`deepep`: one
    priced with DeepEP's kernels)."""
    df = pd.read_csv(cov.CSV).set_index("id")
    out: list[dict[str, Any]] = []
    for i in ids:
        row = df.loc[i].copy()
        row["id"] = i
        sc = cov.scenario(row, cov._fixed_workload(1, row))
        if not exchanges(sc):
            continue
        if not deepep:
            out.append({"id": i})
        elif pools := deepep_pools(sc, cov.serving_engine(row)):
            out.append({"id": i, "inside": all(pools)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=Path, required=True, help="a tpot_groups / coverage --json with an `id` per row")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deepep", action="store_true", help="only rows priced with DeepEP's kernels")
    a = ap.parse_args()
    rows = per_row(a.ids)
    ids = a2a_ids([r["id"] for r in rows], a.deepep)
    a.out.write_text(json.dumps(ids, indent=1))  # tpot_groups.py --ids reads it
    what = "DeepEP-priced" if a.deepep else "an attention-DP + EP"
    print(f"{len(ids)} of {len(rows)} rows price {what} exchange")


if __name__ == "__main__":
    main()

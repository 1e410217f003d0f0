"""Agg export rows that are disaggregated deployments: the early GB200 multi-node runs written with their total GPU
count as `tp_size`.

    python benchmarks/coverage_gpu_total.py            # the reading of every such row
    python benchmarks/coverage_gpu_total.py --simulate # their TPOT / TTFT errors read as agg and as disagg

The InferenceX export `2026-04-06.csv` lists 35 DeepSeek-R1 FP4 TensorRT-LLM rows on GB200 measured 2025-11-16/17
as `mode = agg` with tp_size 12-64 and ep 1 (`..._agg_1024x1024_c32_tp36_ep1_11`). InferenceX ran GB200 DeepSeek
only as Dynamo disaggregated deployments, and each of these rows matches a `dsr1-fp4-gb200-dynamo-trt` item of
`nvidia-master.yaml` on model, GPU, framework, precision, isl / osl and concurrency whose prefill workers x tp plus
decode workers x tp equal the row's tp_size: tp 36 = 1 x 4 + 4 x 8, tp 20 = 1 x 4 + 1 x 16, tp 24 = 2 x 4 + 1 x
16, tp 12 = 1 x 4 + 1 x 8. coverage.py simulates them as one TP-36 (etc.) instance.

Doubt, stated in every reading: the rows were measured on 2025-11-17 and the items first appear in the file at
93e1b3ca1 (2025-12-05); the reading takes the first commit at or after the measurement that lists a matching item,
and only where that commit is the entry's first appearance (an entry already in force at the run, with other
items, is not read forward).

Why `tp_size` is a GPU total and the concurrency a product (branch s13-rows): these items' knobs
(`DECODE_MTP_SIZE=`, `DECODE_MAX_BATCH_SIZE=`) are those of Dynamo's TensorRT-LLM sweep scripts, whose client
(ai-dynamo/dynamo `components/backends/trtllm/performance_sweeps/scripts/bench.sh`, 0857f8c63) records
`total_gpus` for the run and drives `--max-concurrency $((concurrency * num_gen_servers))` for each listed
concurrency; InferenceX's result writer of the time (`utils/process_result.py`, 00e51cc73) stored `tp` = its
`TP` and `tput_per_gpu` = throughput / `TP`, so a per-GPU number needs `TP` = all GPUs. A run's concurrency is
therefore a listed one times the item's decode workers: the tp36 rows at c128 / c144 / c256 / c564 are 4 x 32 /
36 / 64 / 141 (4 TEP-8 decode workers), the tp28 8k/1k rows at c54 / c102 are 3 x 18 / 34 (TensorRT-LLM's
`examples/disaggregated/slurm/benchmark/run_benchmark.sh`, 2974b047a, drives the same product). And most of these
totals cannot be one instance's attention TP: none of 12, 20, 24, 28, 36, 40, 48, 52 divides DeepSeek-R1's 128
heads (`num_attention_heads`, config.json).
coverage.py simulates every row with a reading as that disaggregated deployment (`as_disagg`, `deployment`);
`--simulate` compares both readings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage_disagg as cd

NODE_GPUS = 8  # more GPUs than one node's NVLink group of 8 (GB200: 4 a tray) in `tp_size`: a total, not a TP


def _total(item: dict[str, Any]) -> int:
    (pw, ptp, _, _), (dw, dtp, _, _) = item["prefill"], item["decode"]
    return int(pw * ptp + dw * dtp)


def reading(row: pd.Series, table: dict[str, Any] | None = None) -> cd.Deployment | None:
    """The disaggregated deployment an agg export row with more than a node's GPUs in `tp_size` ran, or None when
    the row is not such a row or no single item shape matches (see module doc)."""
    src = str(row["silicon_data_source"])
    if row["mode"] != "agg" or not any(s in src for s in cd.SOURCES) or int(row["tp_size"]) <= NODE_GPUS:
        return None
    conc, measured = cd._fact(row, "silicon_concurrency"), cd._fact(row, "measured")
    if conc is None or measured is None:
        return None
    t = table if table is not None else cd._table()
    at = max(0, cd.in_force(measured, t))
    key = tuple(str(row[k]) for k in ("model_path", "system", "backend", "precision"))
    cands = [
        it
        for it in t["items"]
        if (it["model"], it["gpu"], it["backend"], it["precision"]) == key
        and (it["isl"], it["osl"]) == (int(row["isl"]), int(row["osl"]))
        and int(conc) in {c * int(it["decode"][0]) for c in it["conc"]}  # listed x decode workers (module doc)
        and _total(it) == int(row["tp_size"])
        and any(b >= at for _, b in it["present"])
    ]
    if not cands:
        return None
    first = min(max(a, at) for it in cands for a, b in it["present"] if b >= at)  # first commit listing one
    # only where the entry itself first appears there: a later item of an entry already in force at the run (e.g.
    # the GB200 SGLang entry, whose early items set pools by node counts) says nothing about what the run used
    same = [it for it in t["items"] if (it["model"], it["gpu"], it["backend"], it["precision"]) == key]
    if min(max(a, at) for it in same for a, b in it["present"] if b >= at) != first:
        return None
    hits = [it for it in cands if any(a <= first <= b for a, b in it["present"])]
    shapes = {(tuple(it["prefill"]), tuple(it["decode"])) for it in hits}
    if len(shapes) != 1 or any(cd._placeholder(it) for it in hits):
        return None
    (pre, dec), specs = next(iter(shapes)), {it["spec"] for it in hits}
    spec = specs.pop() if len(specs) == 1 else None
    ks = {cd.draft_tokens(it) for it in hits} if spec == "mtp" else set()
    names = ", ".join(sorted({f"{it['entry']} ({it['spec']})" for it in hits}))
    commit, date = t["commits"][first][0][:9], t["commits"][first][1][:10]
    return cd.Deployment(
        "config",
        pools={"prefill": cd.pool_layout(*pre), "decode": cd.pool_layout(*dec)},
        spec=spec,
        cite=f"{cd.CONFIG_PATH}@{commit} (first listed {date}, run measured {measured[:10]}): {names}",
        mtp=ks.pop() if len(ks) == 1 else None,
        decode_batch=batches.pop() if len(batches := {cd.decode_batch(it) for it in hits}) == 1 else None,
    )


READ_AS = "read_as"  # set to "gpu_total" on a row `as_disagg` turned into a disagg row
READ_GPU_TOTAL = True  # False: every row as its columns list it (`simulate_agg`)


def as_disagg(row: pd.Series) -> pd.Series:
    """The row as coverage.py simulates it: an agg export row with a `reading` becomes a disagg row (mode
    `disagg`, `READ_AS` set) whose deployment is that reading (`deployment`); any other row unchanged."""
    if not READ_GPU_TOTAL or row.get(READ_AS) == "gpu_total" or reading(row) is None:
        return row
    out = row.copy()
    out["mode"], out[READ_AS] = "disagg", "gpu_total"
    return out


def deployment(row: pd.Series) -> cd.Deployment:
    """coverage_disagg.deployment, or for a row `as_disagg` re-read, the deployment its GPU total names."""
    if row.get(READ_AS) != "gpu_total":
        return cd.deployment(row)
    orig = row.copy()
    orig["mode"] = "agg"
    dep = reading(orig)
    if dep is None:
        raise ValueError(f"row {row['id']}: marked {READ_AS} but no GPU-total reading")
    return dep


def simulate_agg(row: pd.Series) -> tuple[float, float]:
    """coverage.simulate of the row read as the agg instance its columns list (the reading before s13-rows)."""
    import coverage as cov
    import coverage_gpu_total as gt  # the module coverage.py reads (this file may run as __main__)

    gt.READ_GPU_TOTAL = False
    try:
        return cov.simulate(row)
    finally:
        gt.READ_GPU_TOTAL = True


def main() -> None:
    import coverage as cov

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", action="store_true")
    ap.add_argument("--waves", type=int, default=10)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    cov.WAVES = a.waves
    df = pd.read_csv(cov.CSV)
    out = []
    for _, r in df.iterrows():
        dep = reading(r)
        if dep is None:
            continue
        rec: dict[str, Any] = {"id": r["id"], "group": dep.group, "pools": dep.pools, "cite": dep.cite}
        if a.simulate and cov.concurrency(r) <= cov.MAX_CLIENTS:
            t_agg = simulate_agg(r)
            t_dis = cov.simulate(r)  # read as `dep` (as_disagg)
            ms = float(r["silicon_tpot_ms"]), float(r["silicon_ttft_ms"])
            rec |= {
                "tpot_err_agg": t_agg[1] * 1e3 / ms[0] - 1,
                "tpot_err_disagg": t_dis[1] * 1e3 / ms[0] - 1,
                "ttft_err_agg": t_agg[0] * 1e3 / ms[1] - 1,
                "ttft_err_disagg": t_dis[0] * 1e3 / ms[1] - 1,
            }
        out.append(rec)
        print(json.dumps(rec, default=str), flush=True)
    res = pd.DataFrame(out)
    print(f"{len(res)} agg rows read as disaggregated deployments")
    if a.simulate and "tpot_err_agg" in res:
        sim = res.dropna(subset=["tpot_err_agg"])
        for c in ("tpot_err_agg", "tpot_err_disagg", "ttft_err_agg", "ttft_err_disagg"):
            print(f"{c}: median |err| {sim[c].abs().median():.1%}, signed {sim[c].median():+.1%} ({len(sim)} rows)")
    if a.json:
        res.to_json(a.json, orient="records", indent=1)


if __name__ == "__main__":
    main()

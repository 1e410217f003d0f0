"""The saturation check of benchmarks/VALIDATION.md on the silicon rows, classified (issue 12: "no run where servesim
saturates and the real engine did not, or the reverse").

    python benchmarks/validation_saturation.py RESULTS.json [--before OLD.json] [--rows]

A closed loop bounds its queue, so neither side can grow without bound; the proxy is VALIDATION.md's: a row
"saturates" on one side when that side's mean TTFT is over `SAT_S` (1 s) and more than `RATIO` (3x) the other
side's. Each flagged row is joined back to
`silicon_sample.csv` (backend, GPU, mode, layout, isl/osl, clients) and classed by `cause()`. On servesim's side the
class is read from `kv_room`: the KV tokens servesim's serving pool holds (colocated, or decode) over the tokens the
closed loop can hold at once, clients x (isl + osl). Below 1 the loop cannot all be resident and requests wait for
blocks whatever the kernels cost ("KV cannot hold the loop"); otherwise a disaggregated row whose workers are
unknown (neither the row nor InferenceX's config names them: one prefill and one decode worker simulated) is put
on that, another disaggregated row on its prefill pool, and an aggregated one on "other". Rows only the
measurement flags are classed by deployment (disaggregated; aggregated by coverage source, aiconfigurator
gap-analysis or InferenceX): no servesim mechanism is named for them.

Since s14-sat a flag must also hold on each side's queue where the measurement has the row's deployment at low load
(`side_queue`, `validation_saturation_floor`): a TTFT gap already there at a few clients is a per-request time, not
a queue. `--ttft-only` gives the TTFT proxy alone.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CSV = ROOT.parent / "shared" / "data" / "ground-truth" / "aiconfigurator" / "silicon_sample.csv"
SAT_S = 1.0  # mean TTFT over this ...
RATIO = 3.0  # ... and more than this times the other side's: that side "saturates" (VALIDATION.md's proxy)
SLACK = 1.05  # measured clients past their first token above this x a recipe's decode slots: that cap is refuted


def side(r: dict[str, Any]) -> str | None:
    """'servesim' or 'measured' when only that side saturates by the proxy; None when neither (or both)."""
    m, s = r["ttft"]["measured_s"], r["ttft"]["simulated_s"]
    if s > SAT_S and s > RATIO * m:
        return "servesim"
    if m > SAT_S and m > RATIO * s:
        return "measured"
    return None


def side_queue(r: dict[str, Any], floor: dict[str, Any] | None) -> str | None:
    """`side` on the TTFT and, where the deployment's low-load row is read (`validation_saturation_floor.floors`),
    on each side's queue wait too (TTFT above that side's own low-load TTFT): a side saturates when its clients
    queue (Little: X x W of them wait), not when every request pays a time the other side lacks (branch s14-sat)."""
    from benchmarks.validation_saturation_floor import corrected

    s = side(r)
    if s is None or floor is None:
        return s
    return s if side(corrected(r, floor)) == s else None


def flagged(
    res: dict[str, Any], floors: dict[str, dict[str, Any]] | None = None
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Row id -> (group, side, preset replay) for every silicon row the proxy flags (`floors`: `side_queue`'s
    low-load rows; None: the TTFT proxy alone)."""
    out = {}
    for group, g in res["silicon"]["groups"].items():
        for rid, r in g["presets"].items():
            s = side(r) if floors is None else side_queue(r, floors.get(rid))
            if s is not None:
                out[rid] = (group, s, r)
    return out


def kv_room(row: pd.Series) -> tuple[float, float]:
    """(KV tokens the serving side holds, tokens the closed loop needs at once): servesim's KV capacity summed over
    the instances that hold a request's whole context (the colocated pool, or the decode pool) against
    clients x (isl + osl), the most the loop's requests can hold. Below 1: the loop cannot all be resident, and
    requests wait for KV in servesim whatever the kernels cost."""
    from benchmarks import coverage
    from benchmarks.validation_silicon import scenario_for
    from sim.cluster.pools import pool_specs

    sc, _ = scenario_for(row)
    if sc is None:
        return math.nan, math.nan
    pools = {p.role: p for p in pool_specs(sc)}
    serving = pools.get("colocated") or pools["decode"]
    held = serving.instances * serving.capacity.tokens
    return float(held), float(coverage.concurrency(row) * (int(row["isl"]) + int(row["osl"])))


def in_service(r: dict[str, Any], clients: int, osl: int) -> float:
    """Clients the measured run had past their first token, on average, by Little's law on its means: clients x S /
    (TTFT + S), S = TPOT x (mean output - 1) the decode time (mean output 0.9 osl: the InferenceX client's lengths,
    uniform in [0.8 osl, osl], as the replay sends them). On one row it only restates TTFT against S; it tests a
    cap the replay assumes (more clients past their first token than the cap allows refutes it, `cap_check`) and,
    across the concurrencies of one deployment, shows a cap the replay lacks as a plateau (VALIDATION.md, s8-sat)."""
    from benchmarks.coverage import RANGE_RATIO

    s = r["tpot"]["measured_s"] * ((1 + RANGE_RATIO) / 2 * osl - 1)
    return clients * s / (r["ttft"]["measured_s"] + s)


def cap_check(res: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(disagg rows whose recipe caps the decode slots below the clients, those the measurement refutes, their ids):
    the replay's decode cap (`coverage_disagg.decode_slots` x decode workers) against `in_service`."""
    from benchmarks import coverage  # its coverage_disagg readers (imported there with benchmarks/ on the path)

    df = pd.read_csv(CSV).drop_duplicates("id").set_index("id", drop=False)
    binding, refuted = 0, []
    for g in res["silicon"]["groups"].values():
        for rid, r in g["presets"].items():
            row = df.loc[rid] if rid in df.index else None
            if row is None or row["mode"] != "disagg":
                continue
            dep = coverage.deployment(row)
            if (cap := coverage.decode_slots(row, dep)) is None:
                continue
            workers = dep.pools["decode"]["instances"] if dep.pools_read else int(row["decode_num_workers"])
            slots, clients = cap * int(workers), int(coverage.concurrency(row))  # recorded rows: s13-dis
            binding += clients > slots
            if in_service(r, clients, int(row["osl"])) > SLACK * slots:
                refuted.append(rid)
    return binding, len(refuted), refuted


def coverage_source(row: pd.Series) -> str:
    from benchmarks import coverage

    return coverage.source(row)


def deployment_group(row: pd.Series) -> str:
    """How a disaggregated row's workers were read (coverage_disagg: `recorded`, `config`, ..., `unknown`: one
    prefill and one decode worker simulated because neither the row nor InferenceX's config names them); "" for
    agg rows."""
    from benchmarks import coverage

    return "" if row["mode"] == "agg" else str(coverage.group(row))


def concurrency(row: pd.Series) -> int:
    from benchmarks import coverage

    return int(coverage.concurrency(row))


def _elasticity(rid: str) -> float:
    from benchmarks.validation_saturation_floor import measured_elasticity

    return measured_elasticity(rid, CSV)[0]


def rows_table(res: dict[str, Any], kv: bool = False, floors: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    df = pd.read_csv(CSV).drop_duplicates("id").set_index("id", drop=False)
    recs = []
    for rid, (group, s, r) in flagged(res, floors).items():
        row = df.loc[rid] if rid in df.index else None
        held, need = kv_room(row) if kv and row is not None else (math.nan, math.nan)
        clients = math.nan if row is None else concurrency(row)
        served = math.nan if row is None else in_service(r, int(clients), int(row["osl"]))
        recs.append(
            {
                "id": rid,
                "group": group,
                "side": s,
                "backend": group.split()[0],
                "mode": "disagg" if group.endswith("disagg") else "agg",
                "tp": None if row is None else row.get("tp_size"),
                "isl": None if row is None else row.get("isl"),
                "osl": None if row is None else row.get("osl"),
                "clients": None if row is None else row.get("batch_size"),
                "ttft_meas": r["ttft"]["measured_s"],
                "ttft_sim": r["ttft"]["simulated_s"],
                "tpot_err": r["tpot"]["error_pct"],
                "e2e_meas": r["e2e"]["measured_s"],
                "kv_room": held / need if need else math.nan,
                "in_service": served / clients if row is not None else math.nan,
                "source": "" if row is None else coverage_source(row),
                "elasticity": _elasticity(rid) if s == "measured" else math.nan,
                "deployment": "" if row is None else deployment_group(row),
            }
        )
    return pd.DataFrame(recs)


def cause(rec: dict[str, Any]) -> str:
    """The class of one flagged row (`rows_table` record with `kv_room`): on servesim's side, a loop servesim's KV
    cannot hold at once (kv_room < 1: requests wait for blocks) or, with KV to spare, a disaggregated prefill pool
    that cannot keep up; on the measured side, a disaggregated row, an aiconfigurator gap-analysis row, or an
    InferenceX aggregated row (no servesim mechanism named for these: the real engine waited where the model
    does not, see benchmarks/VALIDATION.md)."""
    if rec["side"] == "servesim":
        if rec["kv_room"] < 1.0:
            return "servesim: KV cannot hold the loop"
        if rec["mode"] == "disagg" and str(rec.get("deployment", "")).startswith("unknown"):
            return "servesim: disagg workers unknown (1 prefill + 1 decode simulated)"
        if rec["mode"] == "disagg" and str(rec.get("deployment", "")) == "bound":
            return "servesim: disagg workers undecided (the smallest matching deployment simulated)"
        return "servesim: disagg prefill pool" if rec["mode"] == "disagg" else "servesim: other"
    base = "measured: disagg" if rec["mode"] == "disagg" else f"measured: agg {rec['source']}"
    if "elasticity" not in rec:
        return base
    return f"{base}; {knee(rec['elasticity'])}"


def knee(e: float) -> str:
    """The measured throughput between the deployment's next lighter concurrency and the row (Little's law,
    `validation_saturation_floor.elasticity`): past the knee (the engine at its cap: a queue), below it (throughput
    still rising with the clients: TTFT is a time per request, not a queue), or no lighter row."""
    from benchmarks.validation_saturation_floor import KNEE

    if not math.isfinite(e):
        return "no lighter row"
    return "past the knee" if e < KNEE else "below the knee"


def summary(res: dict[str, Any], floors: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    f = flagged(res, floors)
    by = collections.Counter((s, g) for g, s, _ in f.values())
    total = sum(len(g["presets"]) for g in res["silicon"]["groups"].values())
    return {
        "rows": total,
        "servesim_only": sum(1 for _, s, _ in f.values() if s == "servesim"),
        "measured_only": sum(1 for _, s, _ in f.values() if s == "measured"),
        "by_group": {f"{s}: {g}": n for (s, g), n in sorted(by.items())},
    }


def moved(res: dict[str, Any], floors: dict[str, dict[str, Any]]) -> list[str]:
    """One line per row whose flag the queue test changes: its TTFTs and its deployment's low-load row's."""
    before, after = flagged(res), flagged(res, floors)
    lines = []
    for rid in sorted(set(before) | set(after)):
        a, b = before.get(rid, (None, None, None))[1], after.get(rid, (None, None, None))[1]
        if a == b:
            continue
        r, f = (before.get(rid) or after[rid])[2], floors[rid]
        lines.append(
            f"    {a} -> {b}: {rid} (TTFT measured {r['ttft']['measured_s']:.2f} s, simulated "
            f"{r['ttft']['simulated_s']:.2f} s; at {f['clients']} clients "
            f"{f['measured_s']:.2f} / {f['simulated_s']:.2f} s)"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--rows", action="store_true", help="print every flagged row")
    ap.add_argument(
        "--ttft-only", action="store_true", help="the TTFT proxy alone (no low-load rows replayed: s13's count)"
    )
    args = ap.parse_args()
    for p in (args.results, args.before):
        if p is not None and not p.is_file():
            sys.exit(f"validation_saturation: no such results file: {p}")
    after = json.loads(args.results.read_text())
    floors = None
    if not args.ttft_only:
        from benchmarks.validation_saturation_floor import floors as read_floors

        floors = read_floors(after, CSV, SAT_S)
    if args.before is not None:
        old = json.loads(args.before.read_text())
        b = summary(old, None if floors is None else read_floors(old, CSV, SAT_S))
        print(f"before: {b['rows']} rows, servesim only {b['servesim_only']}, measured only {b['measured_only']}")
    a = summary(after, floors)
    print(f"after:  {a['rows']} rows, servesim only {a['servesim_only']}, measured only {a['measured_only']}")
    if floors is not None:
        t = summary(after)
        print(
            f"  TTFT proxy alone: servesim only {t['servesim_only']}, measured only {t['measured_only']}; "
            f"{len(floors)} rows over {SAT_S:g} s with a low-load row of their deployment (queue test)"
        )
        print("\n".join(moved(after, floors)))
    for k, n in a["by_group"].items():
        print(f"  {k}: {n}")
    table = rows_table(after, kv=True, floors=floors)
    for k, n in sorted(collections.Counter(cause(r) for r in table.to_dict("records")).items()):
        print(f"  class {k}: {n}")
    binding, n_refuted, refuted = cap_check(after)
    print(f"  recipe decode caps below the clients: {binding}; refuted by the measurement (Little): {n_refuted}")
    for rid in refuted:
        print(f"    refuted: {rid}")
    if args.rows:
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            print(table.sort_values(["side", "group", "clients"]).to_string(index=False))


if __name__ == "__main__":
    main()

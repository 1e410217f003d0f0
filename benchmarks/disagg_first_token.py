"""The disaggregated rows' first token, put to the silicon rows: where the simulated TTFT goes, and what the decode
workers' batch limit of the rows' recipes adds.

    python benchmarks/disagg_first_token.py rows --ids benchmarks/results/coverage_results.json [--csv out.csv]
    python benchmarks/disagg_first_token.py coverage -- --sample 200 --json out.json --md out.md

- `rows`: every disagg row of a `coverage.py --json` run, simulated as coverage.py builds it (its `simulate`), once
  as it stands and once with the decode workers' slots of the row's recipe (`coverage_disagg.decode_slots`: the
  TensorRT-LLM generation workers' `max_batch_size` x attention-DP ranks, where InferenceX's configuration names
  the recipe). For each it prints the measured TTFT, the simulated one, the simulated parts of the client's first
  token (prefill queue, prefill, KV copy, decode admission wait, first decode step, front end) and a closed-form
  check that uses no simulation: with c clients and S < c decode slots in a closed loop, the c - S requests beyond
  the slots wait for one, so (Little's law over the decode slots) a request waits about (c - S) / S decode lifetimes
  of (osl - 1) x TPOT before its first decode step — computed from the row's own measured TPOT and mean output.
- `coverage`: coverage.py's full run with the decode slots wired into the disagg rows' scenarios (the one line
  coverage.scenario would take: `decode` pool scheduler `max_num_seqs = decode_slots(row)` where it is not None).

Nothing is fitted: the slots are the recipes' settings, the rest is the simulator's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_disagg import decode_slots, deployment

Scenario = Callable[[pd.Series, dict[str, Any]], dict[str, Any]]
_SCENARIO: Scenario = cov.scenario


def _PLAIN(row: pd.Series, workload: dict[str, Any]) -> dict[str, Any]:
    """coverage.scenario without the decode slots (`--no-decode-slots`): the before state of the comparison."""
    keep, cov.READ_DECODE_SLOTS = cov.READ_DECODE_SLOTS, False
    try:
        return _SCENARIO(row, workload)
    finally:
        cov.READ_DECODE_SLOTS = keep


DECODE_ROUTER: dict[str, Any] | None = None  # `--decode-router`: the decode pool's router in the wired runs (a probe)
RECORDED_BATCH = False  # `--recorded-batch`: a probe, recorded rows' `decode_batch_size` read as the workers' cap


def slots(row: pd.Series) -> int | None:
    """The decode workers' slots in the wired runs: `decode_slots`, or under the `--recorded-batch` probe a
    recorded row's `decode_batch_size` x its decode attention-DP ranks (the export's per-worker batch, which equals
    clients / workers on every recorded row looked at, so whether it is the recipe's cap is not known)."""
    if RECORDED_BATCH and deployment(row).status == "recorded" and not pd.isna(row["decode_batch_size"]):
        dp = 1 if pd.isna(row["decode_attention_dp_size"]) else int(row["decode_attention_dp_size"])
        return int(row["decode_batch_size"]) * dp
    return decode_slots(row)


def with_decode_slots(row: pd.Series, workload: dict[str, Any]) -> dict[str, Any]:
    """coverage.scenario, plus the decode workers' slots of the row's recipe (`decode_slots`) where one is read."""
    sc = _PLAIN(row, workload)
    if row["mode"] == "disagg" and (cap := slots(row)) is not None:
        dec = sc["cluster"]["decode"]
        own = dec.get("scheduler", sc["scheduler"])
        dec["scheduler"] = {**own, ("max_running_requests" if own["kind"] == "sglang" else "max_num_seqs"): cap}
        if DECODE_ROUTER is not None:
            dec["router"] = DECODE_ROUTER
    return sc


def _simulate(row: pd.Series, wired: bool) -> pd.DataFrame:
    """The row's requests frame under coverage.simulate (its closed loop, engine preset, stream settings)."""
    got: list[pd.DataFrame] = []
    plain_run = cov._run

    def keep(sc: dict[str, Any]) -> pd.DataFrame:
        df = plain_run(sc)
        got.append(df)
        return df

    cov.scenario, cov._run = (with_decode_slots if wired else _PLAIN), keep
    try:
        cov.simulate(row)
    finally:
        cov.scenario, cov._run = _PLAIN, plain_run
    return got[0]


def parts(df: pd.DataFrame) -> dict[str, float]:
    """Mean simulated parts of the client's TTFT, ms: prefill queue, prefill (first schedule to the prefill's first
    token), KV copy, decode admission wait, the rest (first decode step, front end, stream interval)."""
    q = df["first_scheduled_s"] - df["arrival_s"]
    p = df["first_token_s"] - df["first_scheduled_s"]
    kv, w = df["kv_transfer_s"].fillna(0.0), df["decode_wait_s"].fillna(0.0)
    rest = df["ttft_s"] - q - p - kv - w
    named = (("queue", q), ("prefill", p), ("kv", kv), ("wait", w), ("rest", rest))
    return {k: 1e3 * float(v.mean()) for k, v in named}


def little(row: pd.Series, slots_total: int | None, output_mean: float) -> float:
    """Closed-form decode-slot wait (ms) from the row's measurement alone: (c - S) / S x (osl - 1) x TPOT."""
    c = cov.concurrency(row)
    if slots_total is None or slots_total >= c:
        return 0.0
    return (c - slots_total) / slots_total * (output_mean - 1) * float(row["silicon_tpot_ms"])


def rows(args: argparse.Namespace) -> None:
    df = pd.read_csv(args.csv)
    ids = {r["id"] for r in json.loads(args.ids.read_text())["errors"]["per_row"] if r["mode"] == "disagg"}
    out = []
    sel = df["id"].isin(ids) & (df["backend"] == args.backend if args.backend else True)
    for _, row in df[sel].iterrows():
        dep = deployment(row)
        cap = slots(row)
        if args.short_only and cap is None:
            continue
        n = row["decode_num_workers"]
        workers = dep.pools["decode"]["instances"] if dep.pools_read else 1 if pd.isna(n) else int(n)
        total = None if cap is None else cap * workers
        base = _simulate(row, wired=False)
        rec: dict[str, Any] = {
            "id": row["id"], "backend": row["backend"], "deployment": dep.group, "clients": cov.concurrency(row),
            "slots": total, "measured_ttft_ms": float(row["silicon_ttft_ms"]),
            "sim_ttft_ms": 1e3 * float(base["ttft_s"].mean()),
            "measured_tpot_ms": float(row["silicon_tpot_ms"]), "sim_tpot_ms": 1e3 * float(base["tpot_s"].mean()),
            "little_ms": little(row, total, float(base["output_tokens"].mean())),
            **{f"base_{k}": v for k, v in parts(base).items()},
        }  # fmt: skip
        wired = _simulate(row, wired=True) if cap is not None else base
        rec |= {"wired_ttft_ms": 1e3 * float(wired["ttft_s"].mean())}
        rec |= {"wired_tpot_ms": 1e3 * float(wired["tpot_s"].mean())}
        rec |= {f"wired_{k}": v for k, v in parts(wired).items()}
        out.append(rec)
        print(
            f"{str(row['id'])[:58]:58s} c={rec['clients']:4d} S={total or '-'!s:>4s}"
            f" meas {rec['measured_ttft_ms']:8.0f}"
            f" sim {rec['sim_ttft_ms']:7.0f} -> {rec['wired_ttft_ms']:7.0f} (wait {rec['wired_wait']:6.0f},"
            f" little {rec['little_ms']:6.0f}) tpot {rec['measured_tpot_ms']:5.1f} sim {rec['sim_tpot_ms']:5.1f}"
            f" -> {rec['wired_tpot_ms']:5.1f}",
            flush=True,
        )
    res = pd.DataFrame(out)
    if args.out:
        res.to_csv(args.out, index=False)
    for name, t in (("as built", "sim_ttft_ms"), ("with decode slots", "wired_ttft_ms")):
        err = res[t] / res["measured_ttft_ms"] - 1
        short = res["slots"].notna() & (res["slots"] < res["clients"])
        print(
            f"{name}: {len(res)} disagg rows, median |TTFT err| {err.abs().median():.1%} (signed {err.median():+.1%});"
            f" the {int(short.sum())} rows with fewer slots than clients: {err[short].abs().median():.1%}"
        )


def coverage(argv: list[str]) -> None:
    """coverage.main with the decode slots wired (see the module doc)."""
    cov.scenario = with_decode_slots
    sys.argv = [str(Path(cov.__file__)), *argv]
    cov.main()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "coverage":
        coverage([a for a in sys.argv[2:] if a != "--"])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rows")
    r.add_argument("--ids", type=Path, default=Path(__file__).resolve().parent / "results" / "coverage_results.json")
    r.add_argument("--csv", type=Path, default=cov.CSV, help="the silicon rows")
    r.add_argument("--out", type=Path, default=None, help="write the per-row table here")
    r.add_argument("--short-only", action="store_true", help="only the rows whose decode slots are read")
    r.add_argument("--decode-router", default=None, help="a router kind for the decode pool in the wired runs")
    r.add_argument("--recorded-batch", action="store_true", help="probe: recorded decode_batch_size as the cap")
    r.add_argument("--backend", default=None, help="only the rows of this backend (sglang, trtllm)")
    sub.add_parser("coverage")
    args = ap.parse_args()
    global DECODE_ROUTER, RECORDED_BATCH
    DECODE_ROUTER = {"kind": args.decode_router} if args.decode_router else None
    RECORDED_BATCH = args.recorded_batch
    rows(args)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""Could the engines' KV reservation for future output tokens explain servesim's low TTFT on SGLang / TensorRT-LLM
rows? A check on the rows, run before building the mechanism (issues 12 / 13; benchmarks/VALIDATION.md,
"Admission reservations (branch s9-reserve)").

    python benchmarks/admission_reserve_check.py [--coverage benchmarks/results/coverage_results.json]
        [--validation benchmarks/results/validation_presets_s8_final_results.json] [--json OUT.json]
    python benchmarks/admission_reserve_check.py --simulate OUT.json [--reserve-off] [--backend trtllm] [--only ID]
        # the rows it binds (--only: those whose id contains ID)

The mechanisms, read in source (facts only; no code carried over):

- TensorRT-LLM: `SchedulerConfig.capacity_scheduler_policy` defaults to `GUARANTEED_NO_EVICT`
  (tensorrt_llm/llmapi/llm_args.py): a request is scheduled only if the KV blocks of its whole length, prompt +
  `max_tokens`, fit beside what the running requests still need to reach theirs. `MAX_UTILIZATION` admits
  optimistically and pauses requests instead; InferenceX's single-node TensorRT-LLM recipes set it only in the
  MiniMax-M2.5 / Qwen3.5 fp4 B200/B300 scripts (`git grep capacity_scheduler_policy` on the InferenceX mirror).
- SGLang (python/sglang/srt/managers/schedule_policy.py `PrefillAdder`, sgl-project/sglang@ad0119f): a prompt is
  admitted while its extend tokens + min(max_new_tokens - generated, 4096) (`CLIP_MAX_NEW_TOKENS_ESTIMATION`) stay
  below free + evictable KV less, per running request, min(max_new_tokens - generated, 4096) x new_token_ratio,
  and less the prompts and whole clipped outputs already admitted in the same pass. new_token_ratio starts at
  0.7 x `schedule_conservativeness` (`SGLANG_INIT_NEW_TOKEN_RATIO`, default conservativeness 1), falls by
  (init - min) / 600 (`SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS`) per decode step to min = init x 0.14
  (`SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR`), and is raised again on retraction (python/sglang/srt/environ.py).
  With `ignore_eos` and the radix cache disabled, `add_one_req_ignore_eos` counts every output in full (ratio 1).

Both reserve at most every client's whole request, prompt + output. So a reservation can hold a closed loop's
clients back only where servesim's KV (the serving pool: colocated, or decode) cannot hold clients x (isl + osl)
tokens at once. This script counts those rows, `n_res` = instances x floor(KV tokens per instance / (isl + osl))
capped at the clients (the longest request of InferenceX's random lengths, so an upper bound on the reservation:
where n_res = clients no reservation binds), and sets it beside the requests in service the measurement implies by
Little's law, n = clients x S / (TTFT + S), S = TPOT x (osl - 1), on the rows whose TTFT servesim misses most.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("sglang", "trtllm")


def reserved_concurrency(clients: int, instances: int, kv_per_instance: int, isl: int, osl: int) -> int:
    """Clients a whole-request reservation (prompt + output of the longest request, isl + osl) lets in service at
    once: each instance holds floor(KV / (isl + osl)) such reservations; never more than the clients."""
    return min(clients, instances * (kv_per_instance // (isl + osl)))


def reservation_room(row: pd.Series) -> dict[str, Any] | None:
    """servesim's serving-pool KV for the row and the concurrency a whole-request reservation allows there
    (None when the row is not expressible)."""
    from benchmarks import coverage
    from sim.cluster.pools import pool_specs
    from sim.config.scenario import load_scenario

    if coverage.expressible(row) is not None:
        return None
    sc = load_scenario(coverage.scenario(row, coverage._fixed_workload(1, row)))
    pools = {p.role: p for p in pool_specs(sc)}
    serving = pools.get("colocated") or pools["decode"]
    per_instance = serving.capacity.tokens
    c, longest = coverage.concurrency(row), int(row["isl"]) + int(row["osl"])
    n_res = reserved_concurrency(c, serving.instances, per_instance, int(row["isl"]), int(row["osl"]))
    return {
        "clients": c,
        "kv_tokens": serving.instances * per_instance,
        "room": serving.instances * per_instance / (c * longest),
        "n_res": n_res,
        "binds": n_res < c,
    }


def littles_n(clients: int, ttft_s: float, tpot_s: float, osl: int) -> float:
    """Requests in service the measured means imply (Little's law on the closed loop)."""
    s = tpot_s * (osl - 1)
    return clients * s / (ttft_s + s) if ttft_s + s > 0 else float("nan")


def all_rows(df: pd.DataFrame) -> dict[str, Any]:
    """Every expressible SGLang / TensorRT-LLM row of the file: how many a whole-request reservation could touch."""
    out: dict[str, Any] = {}
    for (backend, mode), g in df[df["backend"].isin(BACKENDS)].groupby(["backend", "mode"]):
        rooms = [r for _, row in g.iterrows() if (r := reservation_room(row)) is not None]
        out[f"{backend} {mode}"] = {
            "expressible": len(rooms),
            "binds": sum(r["binds"] for r in rooms),
            "median_room": round(statistics.median(r["room"] for r in rooms), 2) if rooms else None,
        }
    return out


def sample_rows(df: pd.DataFrame, coverage_json: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The coverage sample's SGLang / TensorRT-LLM rows: signed TTFT error beside the reservation's room."""
    per_row = json.loads(coverage_json.read_text())["errors"]["per_row"]
    recs = []
    for r in per_row:
        if r["backend"] not in BACKENDS or r["id"] not in df.index:
            continue
        row = df.loc[r["id"]]
        room = reservation_room(row)
        if room is None:
            continue
        meas_ttft, meas_tpot = r["silicon_ttft_ms"] / 1e3, r["silicon_tpot_ms"] / 1e3
        recs.append(
            {
                "id": r["id"],
                "backend": r["backend"],
                "mode": r["mode"],
                "isl": int(row["isl"]),
                "osl": int(row["osl"]),
                **room,
                "ttft_err": r["ttft_ms"] / r["silicon_ttft_ms"] - 1,
                "ttft_meas_s": meas_ttft,
                "n_measured": littles_n(room["clients"], meas_ttft, meas_tpot, int(row["osl"])),
                "n_simulated": littles_n(room["clients"], r["ttft_ms"] / 1e3, r["tpot_ms"] / 1e3, int(row["osl"])),
            }
        )
    summary: dict[str, Any] = {}
    for key in sorted({(x["backend"], x["mode"]) for x in recs}):
        g = [x for x in recs if (x["backend"], x["mode"]) == key]
        hi = [x for x in g if x["clients"] >= 65]
        summary[" ".join(key)] = {
            "rows": len(g),
            "binds": sum(x["binds"] for x in g),
            "signed_ttft_median": round(statistics.median(x["ttft_err"] for x in g), 3),
            "signed_ttft_median_unbound": round(statistics.median(x["ttft_err"] for x in g if not x["binds"]), 3),
            "rows_65_clients_up": len(hi),
            "binds_65_clients_up": sum(x["binds"] for x in hi),
            # the share of the loop in service (past its first token) at >= 65 clients, measured and simulated
            "in_service_65_up_measured": round(statistics.median(x["n_measured"] / x["clients"] for x in hi), 3)
            if hi
            else None,
            "in_service_65_up_simulated": round(statistics.median(x["n_simulated"] / x["clients"] for x in hi), 3)
            if hi
            else None,
        }
    return recs, summary


def measured_only(df: pd.DataFrame, validation_json: Path) -> list[dict[str, Any]]:
    """The agg rows the saturation proxy flags on the measured side only (validation_saturation.py), each with the
    reservation's concurrency and the measurement's Little's-law concurrency."""
    from benchmarks.validation_saturation import flagged

    res = json.loads(validation_json.read_text())
    out = []
    for rid, (_, side, r) in flagged(res).items():
        if side != "measured" or rid not in df.index:
            continue
        row = df.loc[rid]
        if row["mode"] != "agg" or row["backend"] not in BACKENDS:
            continue
        room = reservation_room(row)
        if room is None:
            continue
        tpot_s = row["silicon_tpot_ms"] / 1e3
        n = littles_n(room["clients"], r["ttft"]["measured_s"], tpot_s, int(row["osl"]))
        out.append(
            {"id": rid, "backend": row["backend"], "ttft_meas_s": r["ttft"]["measured_s"], "n_measured": n, **room}
        )
    return out


def simulate_binding(
    df: pd.DataFrame, reserve_off: bool, backends: tuple[str, ...] = BACKENDS, only: str = ""
) -> list[dict[str, Any]]:
    """Every aggregated SGLang / TensorRT-LLM row where the reservation binds (n_res < clients; at most
    coverage.MAX_CLIENTS clients) simulated as coverage.py does, with the presets' reservation, or with
    `admission_reserve: none` (`reserve_off`: the model before it), beside Little's law on both sides."""
    from benchmarks import coverage

    if reserve_off:
        engine = coverage.serving_engine

        def without(row: pd.Series, *a: Any, **k: Any) -> dict[str, Any]:
            return {**engine(row, *a, **k), "admission_reserve": "none"}

        coverage.serving_engine = without  # (this process only: the "before" column)
    out = []
    for _, row in df[df["backend"].isin(backends) & (df["mode"] == "agg")].iterrows():
        room = reservation_room(row)
        if only not in str(row["id"]) or room is None or not room["binds"] or room["clients"] > coverage.MAX_CLIENTS:
            continue
        ttft, tpot = coverage.simulate(row)
        meas_ttft, meas_tpot, osl = row["silicon_ttft_ms"] / 1e3, row["silicon_tpot_ms"] / 1e3, int(row["osl"])
        rec = {
            "id": row["id"],
            "backend": row["backend"],
            **room,
            "ttft_meas_s": meas_ttft,
            "ttft_sim_s": ttft,
            "tpot_meas_s": meas_tpot,
            "tpot_sim_s": tpot,
            "n_measured": littles_n(room["clients"], meas_ttft, meas_tpot, osl),
            "n_simulated": littles_n(room["clients"], ttft, tpot, osl),
        }
        out.append(rec)
        print(
            f"{rec['id'][:62]:62s} c {rec['clients']:4d} n_res {rec['n_res']:4d} n meas/sim {rec['n_measured']:6.1f}"
            f" / {rec['n_simulated']:6.1f}  TTFT meas/sim {meas_ttft:7.2f} / {ttft:7.2f} s",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coverage", type=Path, default=ROOT / "benchmarks" / "results" / "coverage_results.json")
    s8_final = ROOT / "benchmarks" / "results" / "validation_presets_s8_final_results.json"
    ap.add_argument("--validation", type=Path, default=s8_final)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--simulate", type=Path, default=None, help="simulate the rows the reservation binds; write here")
    ap.add_argument("--reserve-off", action="store_true", help="with --simulate: admission_reserve none (before)")
    ap.add_argument("--backend", choices=BACKENDS, default=None, help="with --simulate: one backend's rows only")
    ap.add_argument("--only", default="", help="with --simulate: rows whose id contains this")
    args = ap.parse_args()
    from benchmarks import coverage

    df = pd.read_csv(coverage.CSV).drop_duplicates("id").set_index("id", drop=False)
    if args.simulate is not None:
        backends = BACKENDS if args.backend is None else (args.backend,)
        args.simulate.write_text(json.dumps(simulate_binding(df, args.reserve_off, backends, args.only), indent=1))
        return
    every = all_rows(df)
    recs, summary = sample_rows(df, args.coverage)
    flagged_rows = measured_only(df, args.validation)
    print("every expressible row: reservation binds (n_res < clients) / rows, median KV room")
    for k, v in every.items():
        print(f"  {k}: {v['binds']} / {v['expressible']}, room {v['median_room']}")
    print(f"coverage sample ({args.coverage.name}):")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    print(f"measured-only agg rows ({args.validation.name}): {len(flagged_rows)}")
    for x in sorted(flagged_rows, key=lambda x: x["room"]):
        print(
            f"  {x['id'][:70]:70s} c {x['clients']:4d}  TTFT {x['ttft_meas_s']:7.2f} s  n_measured "
            f"{x['n_measured']:6.1f}  n_res {x['n_res']:4d}  room {x['room']:.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"every": every, "sample": summary, "rows": recs, "measured_only": flagged_rows}, indent=1)
        )


if __name__ == "__main__":
    main()

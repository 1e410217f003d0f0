"""Per-iteration decomposition of the LLMServingSim vLLM runs: measured decode-step and prefill times against
the cost model's, operator by operator (the evidence behind benchmarks/VALIDATION.md's causes).

    python benchmarks/validation_decompose.py [--set path=value ...]

The runs log per-second engine counters (`timeseries.csv`: running requests, prompt and generation tokens per
second) and per-request token times (`requests.jsonl`). In a second with no prompt tokens every running
request decodes once per step, so the step time is running / generated-tokens-per-second; the context each
step reads is rebuilt from the requests (prompt + tokens generated so far at the middle of the second, each
request at its own mean TPOT). Seconds with prompt tokens give the prefill cost per 1,000 prompt tokens once
the decode part (a least-squares line in batch and context over the decode-only seconds) is taken out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.cluster.pools import build_cost_model  # noqa: E402
from sim.config.scenario import load_scenario  # noqa: E402

GT = ROOT.parent / "shared" / "data" / "ground-truth" / "llmservingsim" / "RTXPRO6000"
RUNS = {"Llama-3.1-8B": "llama31-8b", "Qwen3-32B": "qwen3-32b"}


def ticks(run: str) -> pd.DataFrame:
    """Per second: running, rebuilt context sum and decoding count at mid-second, prompt and generated tokens."""
    d = GT / run
    meta = json.loads((d / "meta.json").read_text())
    rq = [json.loads(line) for line in (d / "requests.jsonl").read_text().splitlines() if line.strip()]
    ts = pd.read_csv(d / "timeseries.csv")
    start = datetime.datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00")).timestamp()
    offset = statistics.median(r["arrival_time"] - r["queued_ts"] for r in rq)  # wall clock - engine clock
    first = np.array([r["first_token_ts"] for r in rq])
    last = np.array([r["last_token_ts"] for r in rq])
    prompt = np.array([r["input_toks"] for r in rq], dtype=float)
    tpot = (last - first) / np.maximum(1, np.array([r["output_toks"] for r in rq]) - 1)
    rows = []
    for t, running, pt, gen in zip(ts["t"], ts["running"], ts["prompt_throughput"], ts["gen_throughput"], strict=True):
        m = start + t - 0.5 - offset
        live = (first <= m) & (m < last)
        ctx = float(np.sum(prompt[live] + (m - first[live]) / tpot[live]))
        rows.append((t, running, int(live.sum()), ctx, pt, gen))
    return pd.DataFrame(rows, columns=["t", "running", "live", "ctx", "prompt_tps", "gen_tps"])


def decompose(run: str, overrides: list[str] | None) -> dict[str, Any]:
    df = ticks(run)
    sc = load_scenario(ROOT / "benchmarks" / "ground_truth" / f"{RUNS[run]}-rtxpro6000.yaml", overrides)
    cm = build_cost_model(sc)
    dec = df[(df.prompt_tps == 0) & (df.gen_tps > 0) & (df.running > 0)].copy()
    dec["measured_ms"] = 1e3 * dec.running / dec.gen_tps
    ctx = dec.ctx * dec.running / np.maximum(dec.live, 1)  # context of the `running` count
    dec["simulated_ms"] = [
        1e3 * float(cm.decode_run(int(n), np.array([c]))[0]) for n, c in zip(dec.running, ctx, strict=True)
    ]
    x = np.c_[np.ones(len(dec)), dec.running, ctx]
    coef, *_ = np.linalg.lstsq(x, dec.measured_ms, rcond=None)
    pre = df[(df.prompt_tps > 500) & (df.running > 20)].copy()
    pctx = pre.ctx * pre.running / np.maximum(pre.live, 1)
    step_ms = coef[0] + coef[1] * pre.running + coef[2] * pctx
    pre_ms = 1e6 * (1 - pre.gen_tps / pre.running * step_ms / 1e3) / pre.prompt_tps
    sim_chunk = 1e3 * cm.iteration([(2048, 0)], 0, 0) / 2.048
    err = 100 * (dec.simulated_ms / dec.measured_ms - 1)
    big = dec.running >= 100
    return {
        "decode_seconds": len(dec),
        "decode_error_median_pct": float(err.median()),
        "decode_error_batch_ge_100_pct": float(err[big].median()) if big.any() else float("nan"),
        "measured_step_ms_batch128": float(dec.measured_ms[dec.running == 128].median()),
        "simulated_step_ms_batch128": float(dec.simulated_ms[dec.running == 128].median()),
        "prefill_ms_per_1k_measured_median": float(pre_ms.median()),
        "prefill_ms_per_1k_simulated_2048_chunk": float(sim_chunk),
        "breakdown_ms_batch128_ctx1500": {
            k: round(v * 1e3, 2) for k, v in cm.breakdown([], 128, 128 * 1500).items() if v
        },
        "breakdown_ms_batch64_ctx1500": {k: round(v * 1e3, 2) for k, v in cm.breakdown([], 64, 64 * 1500).items() if v},
        "breakdown_ms_batch1_ctx1500": {k: round(v * 1e3, 2) for k, v in cm.breakdown([], 1, 1500).items() if v},
        "breakdown_ms_prefill2048": {k: round(v * 1e3, 2) for k, v in cm.breakdown([(2048, 0)], 0, 0).items() if v},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], help="scenario override path=value")
    args = ap.parse_args()
    for run in RUNS:
        print(run, json.dumps(decompose(run, args.set or None), indent=1))


if __name__ == "__main__":
    main()

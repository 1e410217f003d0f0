"""A held first token on the decode worker of a TensorRT-LLM disagg row, put as predictions the rows can refute.

    python benchmarks/ttft_disagg_hold.py [--ids benchmarks/results/coverage_s13dis_results.json]

First the whole silicon file, measured rows only (no simulation): every TensorRT-LLM disagg row whose recipe is
identified (recorded: `ttft_disagg_recipes.matches`; configured: the CONFIG_FILE of its InferenceX item), its
measured TTFT in its own measured TPOTs against each prediction; then the rows of a coverage JSON with the miss.

Source: TensorRT-LLM `PyExecutor._handle_responses` (tensorrt_llm/_torch/pyexecutor/py_executor.py, after PR #5836,
2025-07): a generation-only request (the decode side of a disaggregated one) emits no response while its KV is in
transmission, nor at `py_decoding_iter <= 1` when the overlap scheduler is on ("first token has already been
emitted previously" — by trtllm-serve's context server); afterwards a response leaves at `py_decoding_iter %
stream_interval == 0` or at the end. Behind Dynamo the prefill worker's output is not streamed to the client (Dynamo
docs, design_docs/disagg_serving.md: the prefill returns `disaggregated_params` to the PrefillRouter; the decode
worker streams), so the client's first chunk would come after `stream_interval` decode iterations. The srt-slurm
recipes set the decode `stream_interval` to 100 (273 of 329 TensorRT-LLM recipes) or 20, the overlap scheduler on
(ttft_disagg_recipes). Predictions (miss = measured - simulated mean TTFT, in the row's measured TPOTs):
- full hold, per-request counter: miss >= stream_interval - 1 on every row whose decode slots do not bind, and the
  measured TTFT itself >= (stream_interval - 1) x TPOT;
- a hold at a random phase of the interval (a counter not started by the request): miss near (stream_interval - 1) / 2,
  the measured TTFT >= that many TPOTs on average.
Only reads; nothing is fitted or built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage_disagg as cd
import ttft_disagg_recipes as tdr
from ttft_gap import joined

CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ground-truth" / "aiconfigurator"
CSV = CSV / "silicon_sample.csv"

DEFAULT = Path(__file__).resolve().parent / "results" / "coverage_s13rows_results.json"


def _with_interval(df: pd.DataFrame) -> Iterator[tuple[pd.Series, list[dict[str, Any]], int]]:
    """TensorRT-LLM disagg rows whose matching recipes agree on one decode stream interval: row, recipes, interval."""
    for _, r in df[(df["mode"] == "disagg") & (df["backend"] == "trtllm")].iterrows():
        rec = tdr.row_recipes(r)
        si = {v["decode_stream_interval"] for v in rec}
        if len(si) == 1:
            yield r, rec, si.pop()


def hold_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per TensorRT-LLM disagg row with a recipe: its decode stream interval, slots, the closed-form slot wait
    (Little's law, s9-disagg) and the miss in measured TPOTs beside both hold predictions."""
    out = []
    for r, rec, s in _with_interval(df):
        tpot, c = float(r["silicon_tpot_ms"]), int(r["clients"])
        ranks = {v["decode_batch"] * (v["decode_tp"] if v["decode_dp"] else 1) for v in rec}
        workers = {v["decode_workers"] for v in rec}
        slots = ranks.pop() * workers.pop() if len(ranks) == 1 and len(workers) == 1 else np.nan
        wait = max(0.0, c - slots) / slots * (0.9 * float(r["osl"]) - 1) * tpot if slots == slots else np.nan
        out.append(
            {
                "id": r["id"],
                "release": r["release"],
                "clients": c,
                "slots": slots,
                "stream_interval": s,
                "measured_ms": float(r["silicon_ttft_ms"]),
                "sim_ms": float(r["ttft_ms"]),
                "slot_wait_ms": wait,
                "miss_tpots": float(r["miss_tpots"]),
                "full_hold_ms": (s - 1) * tpot,
            }
        )
    return pd.DataFrame(out)


def _slots(rec: list[dict[str, Any]]) -> float:
    """Decode slots of the whole decode pool the recipes agree on (NaN when they do not)."""
    found = {v["decode_batch"] * (v["decode_tp"] if v["decode_dp"] else 1) * v["decode_workers"] for v in rec}
    return float(found.pop()) if len(found) == 1 else np.nan


def file_table(csv: Path = CSV) -> pd.DataFrame:
    """Every TensorRT-LLM disagg row of the file with an identified recipe: stream interval, clients, slots, and
    the measured TTFT in measured TPOTs (an upper bound on any hold counted in decode steps)."""
    df = pd.read_csv(csv)
    out = []
    for r, rec, s in _with_interval(df):
        c = int(str(cd._fact(r, "silicon_concurrency")))
        ratio = float(r["silicon_ttft_ms"]) / float(r["silicon_tpot_ms"])
        out.append({"id": r["id"], "isl": int(r["isl"]), "stream_interval": s, "clients": c,
                    "slots": _slots(rec), "ttft_in_tpots": ratio})  # fmt: skip
    t = pd.DataFrame(out)
    t["slots_bind"] = t["clients"] > t["slots"]
    return t


def file_summary(t: pd.DataFrame) -> pd.DataFrame:
    """Per stream interval, rows whose slots do not bind: how many measured TTFTs fall below each prediction."""
    free = t[~t["slots_bind"]]
    rows = []
    for s, g in free.groupby("stream_interval"):
        x = g["ttft_in_tpots"]
        rows.append({"stream_interval": s, "rows": len(g), "median": x.median(), "q10": x.quantile(0.1),
                     "below_full": int((x < s - 1).sum()), "below_half": int((x < (s - 1) / 2).sum())})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=Path, default=DEFAULT, help="a coverage.py --json (measured and simulated rows)")
    args = ap.parse_args()
    with pd.option_context("display.width", 200):
        print("whole file, measured only (TTFT in measured TPOTs; rows whose decode slots do not bind):")
        print(file_summary(file_table()).round(1).to_string(index=False))
    t = hold_table(joined(args.ids))
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(t.round(1).to_string(index=False))
    free = t[~(t["clients"] > t["slots"])]  # slots do not bind (or unknown)
    for s, g in free.groupby("stream_interval"):
        below = int((g["measured_ms"] < g["full_hold_ms"]).sum())
        print(
            f"\nstream_interval {s}: {len(g)} rows whose slots do not bind; miss median {g['miss_tpots'].median():.1f}"
            f" TPOTs (quartiles {g['miss_tpots'].quantile(0.25):.1f} / {g['miss_tpots'].quantile(0.75):.1f});"
            f" full hold predicts >= {s - 1}, half {(s - 1) / 2:.1f}; measured TTFT below the full hold on"
            f" {below} of {len(g)}"
        )


if __name__ == "__main__":
    main()

"""TensorRT-LLM DeepSeek-R1 agg rows by the MoE backend their InferenceX recipe selected: signed TPOT error.

    python benchmarks/tpot_moe_backend.py --results <tpot_groups.py or coverage.py results json>

The recipes set `moe_config.backend` per deployment (read in SemiAnalysisAI/InferenceX, commits named below),
and TensorRT-LLM tech blog 24 measured two of those backends on the same B200, shape and precision (DeepSeek-V3
NVFP4, TP 8: CUTLASS 2.0-2.2x TRTLLM-Gen's time at 32-384 tokens; `moe_kernel_check.py`). servesim prices every
grouped expert GEMM one way. If the kernel is what servesim misses, rows that ran TRTLLM should come out too slow
and rows that ran CUTLASS too fast. A diagnostic: the rows are grouped by a recipe fact, nothing is fitted.

Recipe facts (the backend in force on the row's `measured=` date; rows measured before the first date: unread):
- `dsr1_fp4_b200_trt.sh` (ec90f3fe7, 2025-09-18, to HEAD 843c6254f; `_mtp.sh` from bf3456727, 2026-01-15):
  CUTLASS with attention DP, TRTLLM without.
- `dsr1_fp8_b200_trt.sh`: DEEPGEMM through b30c3398a (2026-01-27); from ec7bafaae (2026-01-29) TRTLLM, DEEPGEMM
  at 1k/8k with CONC >= 256 (dropped at 626932a11, 2026-03-27). `_mtp.sh`: DEEPGEMM through 2026-02-04; from
  5d517074c (2026-02-05) TRTLLM, DEEPGEMM with attention DP.
- `dsr1_fp8_h200_trt.sh` and `_mtp.sh` (9596d23d7, 2025-10-29 / bf3456727): CUTLASS throughout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
import coverage_agg_mtp as agg_mtp
from coverage_compare import per_row
from coverage_recipes import measured_date


def backend(row: pd.Series) -> str | None:
    """The MoE backend the row's recipe selected (module doc), None where not read."""
    name, gpu, prec = str(row["model_path"]).lower(), str(row["system"]), str(row["precision"])
    if row["backend"] != "trtllm" or row["mode"] != "agg" or "deepseek" not in name or cov.source(row) != "inferencex":
        return None
    date, dp = measured_date(row), cov._layout(row).get("attention_dp", 1) > 1
    mtp = agg_mtp.speculative(row) is not None
    if gpu == "h200_sxm" and prec == "fp8":
        return "CUTLASS" if date >= "2025-10-29" else None
    if gpu != "b200_sxm":
        return None
    if prec == "fp4":
        start = "2026-01-15" if mtp else "2025-09-18"
        return None if date < start else ("CUTLASS" if dp else "TRTLLM")
    if prec != "fp8":
        return None
    if mtp:
        return None if date < "2026-01-15" else ("DEEPGEMM" if date < "2026-02-05" or dp else "TRTLLM")
    if date < "2025-11-03":
        return None
    if date < "2026-01-29":
        return "DEEPGEMM"
    deep = (int(row["isl"]), int(row["osl"])) == (1024, 8192) and cov.concurrency(row) >= 256 and date < "2026-03-27"
    return "DEEPGEMM" if deep else "TRTLLM"


def table(results: list[dict[str, Any]]) -> pd.DataFrame:
    errs = {r["id"]: r["tpot_err"] for r in results if r.get("tpot_err") is not None}
    df = pd.read_csv(cov.CSV)
    out = []
    for _, row in df[df["id"].isin(errs)].iterrows():
        if (b := backend(row)) is not None:
            dp = cov._layout(row).get("attention_dp", 1) > 1
            mtp = agg_mtp.speculative(row) is not None
            out.append(
                {"id": row["id"], "gpu": row["system"], "backend": b, "dp": dp, "mtp": mtp, "err": errs[row["id"]]}
            )
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True)
    a = ap.parse_args()
    res = table(per_row(Path(a.results)))
    print("| GPU | MoE backend | attention DP | MTP | rows | median signed TPOT | median abs |")
    print("|---|---|---|---|---|---|---|")
    for (gpu, b, dp, mtp), g in res.groupby(["gpu", "backend", "dp", "mtp"]):
        e = g["err"].to_numpy()
        print(f"| {gpu} | {b} | {dp} | {mtp} | {len(e)} | {np.median(e):+.1%} | {np.median(np.abs(e)):.1%} |")


if __name__ == "__main__":
    main()

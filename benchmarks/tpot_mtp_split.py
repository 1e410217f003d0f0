"""DeepSeek-R1 TensorRT-LLM TPOT errors split by MTP reading and load: is the MTP miss per token or per load?

    python benchmarks/tpot_mtp_split.py <coverage.py or tpot_groups.py results json> [...]

Two tables per file: (1) every DeepSeek TensorRT-LLM row by its deployment group's MTP reading (`MTP`, `MTP?`,
none) and whether it ran with >= 64 clients; (2) the rows simulated with MTP by draft length k, attention DP of
the decoding pool and the same load split. A per-token error (the acceptance) shows at every load; a load-bound
one only at large batch (COVERAGE.md, branch s13-rows). A diagnostic: nothing is fitted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_compare import per_row
from coverage_gpu_total import as_disagg

LARGE = 64  # clients from which a row counts as large batch


def _mtp(row: pd.Series) -> tuple[int, bool] | None:
    """(draft tokens, attention DP in the decoding pool) of a row simulated with MTP, else None."""
    r = as_disagg(row)
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    spec = sc.get("speculative")
    if not spec:
        return None
    pool = sc["cluster"] if r["mode"] == "agg" else sc["cluster"]["decode"]
    return int(spec["num_tokens"]), int(pool.get("attention_dp", 1)) > 1


def split(path: Path, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables (module doc) of one results file."""
    rows = per_row(path)
    by_reading: list[dict[str, Any]] = []
    by_k: list[dict[str, Any]] = []
    for res in rows:
        if res["id"] not in df.index or res.get("tpot_err") is None:
            continue
        row = df.loc[res["id"]]
        if row["backend"] != "trtllm" or "deepseek" not in str(row["model_path"]).lower():
            continue
        dep = str(res.get("deployment"))
        large = cov.concurrency(row) >= LARGE
        mtp = "MTP?" if "MTP?" in dep else "MTP" if "MTP" in dep else "none"
        by_reading.append({"mtp": mtp, "large": large, "err": res["tpot_err"]})
        if (spec := _mtp(row)) is not None:
            by_k.append({"k": spec[0], "dp": spec[1], "large": large, "err": res["tpot_err"]})
    agg = ["count", "median"]
    t1 = pd.DataFrame(by_reading).groupby(["mtp", "large"])["err"].agg(agg) if by_reading else pd.DataFrame()
    t2 = pd.DataFrame(by_k).groupby(["k", "dp", "large"])["err"].agg(agg) if by_k else pd.DataFrame()
    return t1, t2


def main() -> None:
    df = pd.read_csv(cov.CSV).set_index("id", drop=False)
    for arg in sys.argv[1:]:
        t1, t2 = split(Path(arg), df)
        print(f"{arg}\n{t1.round(3).to_string()}\n\n{t2.round(3).to_string()}\n")


if __name__ == "__main__":
    main()

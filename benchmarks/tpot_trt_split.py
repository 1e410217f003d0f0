"""TensorRT-LLM TPOT error split by what the row ran: which groups carry the median, and with which signs.

    python benchmarks/tpot_trt_split.py --results <coverage.py or tpot_groups.py results json> [--other <after>]

Groups (each a reading of the row, nothing measured enters them): model, GPU, mode (agg / disagg), the layout
of the pool that decodes (`dense`, `moe tp` = experts sharded over TP, `moe ep` = whole experts, `dp+ep` =
attention DP with expert parallelism), precision, the deployment reading (coverage_disagg / coverage_agg_mtp: MTP,
`MTP?`, recorded / config / unknown workers), concurrency band, the campaign (InferenceX or aiconfigurator's gap
analysis), the MoE backend the InferenceX recipe selected (`tpot_moe_backend.backend`, DeepSeek agg rows) and the
TensorRT-LLM release (`coverage_trt_release.release`). With `--other`, the same rows' errors in a second file
beside them. A diagnostic: no median is fitted to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_compare import per_row
from coverage_trt_release import release
from tpot_groups import BAND_NAMES, BANDS, group_table
from tpot_moe_backend import backend as moe_backend

GROUPS = ("model", "gpu", "mode", "layout", "precision", "deployment", "band", "source", "moe_backend", "release")


def _rows(path: Path) -> dict[str, float]:
    return {r["id"]: float(r["tpot_err"]) for r in per_row(path) if r.get("tpot_err") is not None}


def layout_class(row: pd.Series) -> str:
    """The decoding pool's layout: dense, moe tp, moe ep, dp+ep (module doc)."""
    if not cov.catalog.model(row["model_path"]).is_moe:
        return "dense"
    prefix = "" if row["mode"] == "agg" else "decode_"
    lay = cov._layout(row, prefix, moe=True)
    if int(lay.get("attention_dp", 1)) > 1 and int(lay.get("ep", 1)) > 1:
        return "dp+ep"
    return "moe ep" if int(lay.get("ep", 1)) > 1 else "moe tp"


def table(errs: dict[str, float]) -> pd.DataFrame:
    """One line per TensorRT-LLM row of `errs` with its groups."""
    df = pd.read_csv(cov.CSV)
    out: list[dict[str, Any]] = []
    for _, row in df[df["id"].isin(errs) & (df["backend"] == "trtllm")].iterrows():
        rel = release(row)
        c = cov.concurrency(row)
        out.append(
            {
                "id": row["id"],
                "model": str(row["model_path"]).split("/")[-1],
                "gpu": row["system"],
                "mode": row["mode"],
                "layout": layout_class(row),
                "precision": row["precision"],
                "deployment": cov.group(row),
                "band": BAND_NAMES[next(i for i, b in enumerate(BANDS[1:]) if c <= b)],
                "source": cov.source(row),
                "moe_backend": moe_backend(row) or "-",
                "release": ".".join(str(v) for v in rel[:3]) + f"rc{rel[3]}" if rel else "-",
                "err": errs[row["id"]],
            }
        )
    return pd.DataFrame(out)


def report(res: pd.DataFrame, after: dict[str, float] | None = None) -> str:
    res = res.copy()
    if after is not None:
        res["after"] = res["id"].map(after)
    err = res["err"]
    lines = [f"TensorRT-LLM rows {len(res)}: median |TPOT| {err.abs().median():.1%}, signed {err.median():+.1%}"]
    if after is not None:
        lines[0] += f" -> {res['after'].abs().median():.1%}, signed {res['after'].median():+.1%}"
    lines += [group_table(res, key, "err", after is not None) for key in GROUPS]
    return "\n\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--other", type=Path, default=None)
    a = ap.parse_args()
    print(report(table(_rows(a.results)), _rows(a.other) if a.other else None))


if __name__ == "__main__":
    main()

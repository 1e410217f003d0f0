"""One pricing reading switched on the sample's agg rows of one backend: median |TPOT| before / after.

    python benchmarks/tpot_sensitivity.py --reading group-width --backend vllm \
        [--results benchmarks/results/coverage_results.json]

A hypothesis check, not a model: each reading is applied in this process only, and no preset changes.
- `group-width`: a grouped expert GEMM reads the efficiency curve of the (k, n x experts) GEMM (one launch whose
  tiles fill the GPU as a dense GEMM of the group's width) instead of one expert's (k, n) matrix;
- `no-eager-moe-host`: vLLM V1's `eager_host_per_moe_layer_s` (host time of an uncaptured prompt step, per MoE
  layer) set to 0.
Rows are simulated at coverage.py's protocol (`coverage.simulate`, 10 waves); "before" is the results file's own
column (run it on the same tree). Nothing is fitted; the output says whether a reading moves the rows as the
hypothesis predicts (sign and size by batch), and what it does to TTFT. It can refute a reading (a reading that
overshoots or breaks TTFT on these rows is wrong somewhere); it cannot justify adopting one: a lower median on
the rows it reports is a fit to them. A reading goes into the model only on engine or kernel source (e.g.
moe_kernel_check.py against measured kernels), with its effect reported on rows outside the sample
(tpot_groups.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov

from sim.costmodel import engine as engine_mod
from sim.costmodel import structured

READINGS = ("group-width", "no-eager-moe-host")


@contextmanager
def reading(name: str) -> Iterator[None]:
    """Switch one reading on for the duration of the block (see the module doc)."""
    if name == "no-eager-moe-host":
        preset = engine_mod.PRESETS["vllm-v1"]
        old = preset["eager_host_per_moe_layer_s"]
        preset["eager_host_per_moe_layer_s"] = 0.0
        try:
            yield
        finally:
            preset["eager_host_per_moe_layer_s"] = old
        return
    if name != "group-width":
        raise ValueError(f"reading must be one of {READINGS}")
    plain = structured.StructuredCost.gemm

    def gemm(
        self: Any, op: str, m: float, k: float, n: float, copies: float = 1.0, *, unquantised: bool = False
    ) -> float:
        if copies <= 1.0 or op not in ("moe_up", "moe_down"):
            return plain(self, op, m, k, n, copies, unquantised=unquantised)
        own = self._curve
        self._curve = lambda o, kk, nn: own(o, kk, nn * copies)
        try:
            return plain(self, op, m, k, n, copies, unquantised=unquantised)
        finally:
            del self._curve

    structured.StructuredCost.gemm = gemm  # type: ignore[method-assign]  # restored below; this process only
    try:
        yield
    finally:
        structured.StructuredCost.gemm = plain  # type: ignore[method-assign]  # the class's own method back


def run(results: list[dict[str, Any]], backend: str, name: str) -> pd.DataFrame:
    by_id = {r["id"]: r for r in results if r.get("mode") == "agg" and r.get("backend") == backend}
    df = pd.read_csv(cov.CSV)
    out = []
    with reading(name):
        for _, row in df[df["id"].isin(by_id)].iterrows():
            r = by_id[row["id"]]
            ttft, tpot = cov.simulate(row)
            out.append(
                {
                    "id": row["id"],
                    "clients": r["clients"],
                    "tpot_before": r["tpot_err"],
                    "tpot_after": tpot * 1e3 / r["silicon_tpot_ms"] - 1,
                    "ttft_before": r["ttft_err"],
                    "ttft_after": ttft * 1e3 / r["silicon_ttft_ms"] - 1,
                }
            )
    return pd.DataFrame(out)


def summary(res: pd.DataFrame) -> dict[str, float]:
    med = {k: float(np.median(np.abs(res[k]))) for k in ("tpot_before", "tpot_after", "ttft_before", "ttft_after")}
    return {
        "rows": len(res),
        **{f"abs_{k}": v for k, v in med.items()},
        "signed_tpot_before": float(np.median(res["tpot_before"])),
        "signed_tpot_after": float(np.median(res["tpot_after"])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reading", choices=READINGS, required=True)
    ap.add_argument("--backend", choices=sorted(cov.ENGINES), required=True)
    ap.add_argument("--results", default=str(cov.ROOT / "benchmarks" / "results" / "coverage_results.json"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = run(json.loads(Path(a.results).read_text())["errors"]["per_row"], a.backend, a.reading)
    s = summary(res)
    print(json.dumps(s, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": s, "rows": res.to_dict("records")}, indent=1))


if __name__ == "__main__":
    main()

"""Large-batch MTP rows simulated with and without MTP: how much of servesim's MTP gain the rows show.

    python benchmarks/tpot_mtp_off.py <coverage.py / tpot_groups.py results json> [...] [--small] [--json out]
    python benchmarks/tpot_mtp_off.py <results json> [...] --rank-table

For every DeepSeek TensorRT-LLM row simulated with MTP at >= 64 clients (`tpot_mtp_split`; `--small`: below), the
row's closed loop is simulated twice, as coverage.py does (`coverage.simulate`) and with the scenario's
`speculative` block removed.
Printed: measured TPOT, both simulated TPOTs, servesim's gain (no-MTP / MTP) and the gain the row shows against
the no-MTP simulation (no-MTP / measured). A prediction of the candidate "TensorRT-LLM switches speculation off
at large batch" (COVERAGE.md, branch s13-mtp): under it the rows would sit at the no-MTP simulation.
`--rank-table` prints the rows' errors by query tokens per rank and step instead (`rank_table`). A diagnostic:
nothing is fitted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_compare import per_row
from coverage_gpu_total import as_disagg
from tpot_mtp_split import LARGE, _mtp


def rows(paths: list[Path], df: pd.DataFrame, large: bool = True) -> list[str]:
    """Ids of the DeepSeek TensorRT-LLM rows simulated with MTP in these results files (first seen), those with
    >= LARGE clients (`large`) or fewer."""
    out: list[str] = []
    for path in paths:
        for res in per_row(path):
            rid = res["id"]
            if rid in out or rid not in df.index or res.get("tpot_err") is None:
                continue
            row = df.loc[rid]
            if row["backend"] != "trtllm" or "deepseek" not in str(row["model_path"]).lower():
                continue
            if (cov.concurrency(row) >= LARGE) == large and _mtp(row) is not None:
                out.append(rid)
    return out


def per_rank(row: pd.Series) -> tuple[int, float]:
    """(draft tokens k, clients per attention-DP rank of the decoding pool) of a DeepSeek TensorRT-LLM row, as
    coverage.py deploys it (instances and DP ranks of the agg pool or of the disagg decode pool)."""
    r = as_disagg(row)
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    pool = sc["cluster"] if r["mode"] == "agg" else sc["cluster"]["decode"]
    k = int(sc["speculative"]["num_tokens"]) if sc.get("speculative") else 0
    return k, cov.concurrency(row) / max(int(pool.get("instances", 1)), 1) / int(pool.get("attention_dp", 1))


def rank_table(paths: list[Path], df: pd.DataFrame) -> pd.DataFrame:
    """Median signed TPOT error of the DeepSeek TensorRT-LLM rows by MTP and by query tokens a rank verifies per
    step (clients per rank x (k + 1)): does the MTP miss follow the step's token count (a compute effect that the
    non-MTP rows at the same token count would share) or MTP itself? Rows without a layout are skipped."""
    out = []
    for path in paths:
        for res in per_row(path):
            if res["id"] not in df.index or res.get("tpot_err") is None:
                continue
            row = df.loc[res["id"]]
            if row["backend"] != "trtllm" or "deepseek" not in str(row["model_path"]).lower():
                continue
            try:
                k, seqs = per_rank(row)
            except (KeyError, ValueError, TypeError):
                continue
            out.append({"mtp": k > 0, "tokens": seqs * (k + 1), "err": res["tpot_err"]})
    t = pd.DataFrame(out)
    t["tokens"] = pd.cut(t["tokens"], [0, 16, 64, 128, 256, 512, 1 << 16])
    return t.groupby(["mtp", "tokens"], observed=True)["err"].agg(["count", "median"])


def without_mtp(run: Any) -> Any:
    """`coverage._run` with the scenario's speculative decoding removed."""

    def _run(sc: dict[str, Any]) -> pd.DataFrame:
        return run({k: v for k, v in sc.items() if k != "speculative"})

    return _run


def compare(row: pd.Series) -> dict[str, Any]:
    """Measured and simulated TPOT (ms) of one row, with and without MTP."""
    _, mtp = cov.simulate(row)
    run = cov._run
    cov._run = without_mtp(run)
    try:
        _, off = cov.simulate(row)
    finally:
        cov._run = run
    meas = float(row["silicon_tpot_ms"])
    k, dp = _mtp(row) or (0, False)
    return {
        "id": row["id"], "system": row["system"], "clients": cov.concurrency(row), "k": k, "dp": dp,
        "measured_ms": meas, "mtp_ms": mtp * 1e3, "off_ms": off * 1e3,
        "err_mtp": mtp * 1e3 / meas - 1, "err_off": off * 1e3 / meas - 1,
        "gain_sim": off / mtp, "gain_row": off * 1e3 / meas,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--small", action="store_true", help="the rows with fewer than LARGE clients instead")
    ap.add_argument("--rank-table", action="store_true", help="only the error table by tokens per rank (no runs)")
    a = ap.parse_args()
    df = pd.read_csv(cov.CSV).set_index("id", drop=False)
    if a.rank_table:
        print(rank_table(a.results, df).round(3).to_string())
        return
    out = [compare(df.loc[rid]) for rid in rows(a.results, df, not a.small)]
    table = pd.DataFrame(out)
    print(table.drop(columns="id").round(3).to_string())
    print(f"median err with MTP {table.err_mtp.median():+.3f}, without {table.err_off.median():+.3f}; "
          f"median gain servesim {table.gain_sim.median():.2f}x, rows {table.gain_row.median():.2f}x")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

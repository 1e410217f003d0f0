"""Is the k = 1 / 2 MTP rows' miss an MTP step overhead that does not scale with k? A check, nothing fitted.

    python benchmarks/mtp_k12_check.py [--waves 3] [--json out.json]

The hypothesis: each MTP step costs a time tau that servesim lacks and that does not grow with k (the draft
head's launch and sync, the sampler / verify kernel, CUDA-graph padding of (k + 1) x batch tokens). It predicts,
for the agg rows that ran k = 1 (TensorRT-LLM) or k = 2 (SGLang) in the 60 MTP rows' rerun
(`benchmarks/results/tpot_groups_mtp60_s8tpot_results.json`):

(a) the per-step deficit (measured - simulated TPOT) x AL_k (AL_k: tokens a step, the published acceptance
    lengths `coverage_disagg.MTP_LENGTHS`) is about the same across lengths at one engine, GPU and batch size;
(b) servesim prices the same deployment without MTP right: against a measured non-MTP run of the same GPU,
    precision, layout, clients and lengths (another row of the file, a different measurement), the error of the
    row simulated with MTP off is near 0, and servesim's MTP gain (TPOT off / on) exceeds the measured one.

Each row is simulated again with MTP off (coverage.py's protocol, `--waves` requests per client); the measured
times enter only the comparison.
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
import coverage_agg_mtp as agg_mtp
from coverage_disagg import MTP_LENGTHS

from hwprofiles import catalog

HERE = Path(__file__).resolve().parent
MTP60 = HERE / "results" / "tpot_groups_mtp60_s8tpot_results.json"
SAME = ["system", "backend", "gemm_quant_mode", "moe_quant_mode", "isl", "osl"]


def twins(df: pd.DataFrame, row: pd.Series) -> list[tuple[str, float]]:
    """Other agg rows of the same deployment and load (GPU, engine, precision, lengths, clients, and the layout
    coverage.py simulates) whose measured TPOT differs from this row's (a second measurement, not the same run
    exported twice): (id, measured TPOT ms)."""
    m = df[(df["mode"] == "agg") & (df["model_path"] == row["model_path"])]
    for k in SAME:
        m = m[(m[k] == row[k]) | (m[k].isna() & pd.isna(row[k]))]
    c, moe = cov.concurrency(row), catalog.model(row["model_path"]).is_moe
    lay = cov._layout(row, moe=moe)
    return [
        (str(i), float(t))
        for i, t in m["silicon_tpot_ms"].items()
        if i != row["id"]
        and cov.concurrency(m.loc[i]) == c
        and cov._layout(m.loc[i], moe=moe) == lay
        and abs(t - row["silicon_tpot_ms"]) > 1e-3
    ]


def without_mtp(row: pd.Series) -> float:
    """Simulated mean TPOT (ms) of an agg row with the MTP reading switched off."""
    keep = agg_mtp.speculative
    agg_mtp.speculative = lambda r: None
    try:
        return cov.simulate(row)[1] * 1e3
    finally:
        agg_mtp.speculative = keep


def check(waves: int) -> list[dict[str, Any]]:
    cov.WAVES = waves
    df = pd.read_csv(cov.CSV).set_index("id", drop=False)
    out, seen = [], set()
    for r in json.loads(MTP60.read_text()):
        row = df.loc[r["id"]]
        k = agg_mtp.draft_tokens(row) if r["mode"] == "agg" else None
        key = (row["system"], row["moe_quant_mode"], r["clients"], r["isl"], r["osl"], round(r["silicon_tpot_ms"], 2))
        if k not in (1, 2) or key in seen:  # duplicate exports of one run count once
            continue
        seen.add(key)
        al = MTP_LENGTHS[str(row["model_path"])][k - 1]
        off = without_mtp(row)
        tw = twins(df, row)
        item = {
            "id": r["id"], "k": k, "backend": r["backend"], "gpu": r["gpu"], "quant": row["moe_quant_mode"],
            "clients": r["clients"], "isl": r["isl"], "osl": r["osl"], "measured_ms": r["silicon_tpot_ms"],
            "sim_mtp_ms": r["tpot_ms"], "tpot_err": r["tpot_err"], "sim_off_ms": off,
            "deficit_per_step_ms": (r["silicon_tpot_ms"] - r["tpot_ms"]) * al, "sim_gain": off / r["tpot_ms"],
            "twins": [{"id": i, "measured_ms": t, "measured_gain": t / r["silicon_tpot_ms"],
                       "off_err": off / t - 1.0} for i, t in tw],
        }  # fmt: skip
        out.append(item)
        print(
            f"k{k} {r['backend']:6} {r['gpu']:9} {row['moe_quant_mode']:9} c{r['clients']:<4} {r['isl']}/{r['osl']}: "
            f"meas {r['silicon_tpot_ms']:6.2f} sim {r['tpot_ms']:6.2f} ({r['tpot_err']:+.1%}) off {off:6.2f} "
            f"deficit/step {item['deficit_per_step_ms']:6.1f} ms sim gain {item['sim_gain']:.2f}"
            + "".join(
                f" | twin {t['measured_ms']:.2f}: gain {t['measured_gain']:.2f}, off err {t['off_err']:+.1%}"
                for t in item["twins"]
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--waves", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res = check(a.waves)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""The TTFT left on TensorRT-LLM disagg rows whose decode pool has room, put to candidate mechanisms it can refute.

    python benchmarks/ttft_disagg_residual.py --ids benchmarks/results/coverage_disagg_oos49_s14-disagg_results.json

Rows: TensorRT-LLM disagg rows of a coverage JSON whose srt-slurm recipe is identified (`ttft_disagg_recipes`) and
whose decode pool has a slot for every client (slots x workers >= clients). Miss = measured - simulated mean TTFT.
Each candidate predicts how the miss moves with the row's facts; the table shows what the rows do.
- **KV transfer over the network** (NIXL / UCX between prefill and decode workers): a time per request of
  isl x KV bytes per token / bandwidth. DeepSeek-R1's FP8 MLA cache is (512 + 64) x 61 layers x 1 byte = 35,136
  bytes a token (config.json: kv_lora_rank 512, qk_rope_head_dim 64, num_hidden_layers 61); at one 400 Gb/s
  ConnectX-7 NIC (50 GB/s; NVIDIA DGX B200 / GB200 NVL72 datasheets: ConnectX-7 400 Gb/s per GPU) that is
  `kv_nic_ms` = 0.72 ms at isl 1,024 and 5.8 ms at 8,192. Prediction: miss(8k) - miss(1k) ~ 5 ms and the miss
  about that size; a miss of hundreds of ms needs a link ~100x slower.
- **A wait counted in decode steps** (the decode worker's admission of a transferred request once per iteration,
  the overlap scheduler's one-step lag, a first response held some iterations): miss / measured TPOT about constant
  across isl and load.
- **The prefill side's queue** (one to a few prefill workers for all clients): the miss grows with the prefill work
  per decode-step time offered, clients x isl / (prefill workers x osl) (`prefill_load`, tokens of prompt per
  generated token per prefill worker).
Before those, `fill_table` (measured rows only, the whole file): how the measured TTFT of rows with room in their
decode pool moves with the clients per decode worker over its slots (`fill`). A router that only sends a request to
a worker with a free slot gives no slot wait at any fill <= 1; round robin (coverage_decode_router) strands requests
on full workers while others have room, more often as `fill` nears 1, each for the rest of a running request's
output (so longer at osl 8,192).
Only reads; nothing is fitted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage_disagg as cd
import ttft_disagg_recipes as tdr
from ttft_disagg_hold import CSV, _slots, _with_interval
from ttft_gap import joined

KV_BYTES_PER_TOKEN = (512 + 64) * 61  # DeepSeek-R1 / V3 FP8 MLA latent + rope key, 61 layers (config.json)
NIC_BYTES_S = 400e9 / 8  # one ConnectX-7 400 Gb/s port per GPU (DGX B200 / GB200 NVL72 datasheets)


def residual_table(ids: Path) -> pd.DataFrame:
    """Rows with room in the decode pool and an identified recipe: the miss and each candidate's covariate."""
    df = joined(ids)
    df = df[(df["mode"] == "disagg") & (df["backend"] == "trtllm")]
    out = []
    for _, r in df.iterrows():
        rec = tdr.row_recipes(r)
        slots = _slots(rec) if rec else np.nan
        if np.isnan(slots) or slots < int(r["clients"]):
            continue
        prefill_workers = {v["prefill_workers"] for v in rec}
        pw = prefill_workers.pop() if len(prefill_workers) == 1 else np.nan
        isl, osl, c = int(r["isl"]), int(r["osl"]), int(r["clients"])
        out.append(
            {
                "id": r["id"],
                "gpu": r["gpu"],
                "release": r["release"],
                "isl": isl,
                "osl": osl,
                "clients": c,
                "measured_ms": float(r["silicon_ttft_ms"]),
                "sim_ms": float(r["ttft_ms"]),
                "miss_ms": float(r["miss_ms"]),
                "miss_tpots": float(r["miss_tpots"]),
                "tpot_ms": float(r["silicon_tpot_ms"]),
                "kv_nic_ms": isl * KV_BYTES_PER_TOKEN / NIC_BYTES_S * 1e3,
                "prefill_load": c * isl / (pw * osl) if pw == pw else np.nan,
            }
        )
    return pd.DataFrame(out)


def fill_table(csv: Path = CSV) -> pd.DataFrame:
    """Measured rows only: TensorRT-LLM disagg rows whose recipes agree on decode workers and slots per worker and
    whose pool has a slot per client, by fill (clients per worker / slots per worker) and osl: the measured TTFT in
    measured TPOTs."""
    rows = []
    for r, rec, _ in _with_interval(pd.read_csv(csv)):
        workers = {v["decode_workers"] for v in rec}
        per = {v["decode_batch"] * (v["decode_tp"] if v["decode_dp"] else 1) for v in rec}
        if len(workers) != 1 or len(per) != 1:
            continue
        w, s, c = workers.pop(), per.pop(), int(str(cd._fact(r, "silicon_concurrency")))
        if s * w >= c:
            ratio = float(r["silicon_ttft_ms"]) / float(r["silicon_tpot_ms"])
            rows.append({"osl": int(r["osl"]), "fill": c / w / s, "ttft_ms": float(r["silicon_ttft_ms"]), "t": ratio})
    t = pd.DataFrame(rows)
    t["fill"] = pd.cut(t["fill"], [0, 0.5, 0.75, 0.99, 1.0])
    g = t.groupby(["fill", "osl"], observed=True)
    return g.agg(rows=("t", "size"), ttft_tpots=("t", "median"), q90=("t", lambda x: x.quantile(0.9)),
                 ttft_ms=("ttft_ms", "median"))  # fmt: skip


def summary(t: pd.DataFrame) -> str:
    """The candidates' tests, as lines."""
    lines = [f"{len(t)} rows with room in the decode pool"]
    for isl, g in t.groupby("isl"):
        lines.append(
            f"isl {isl}: {len(g)} rows, miss median {g['miss_ms'].median():.0f} ms ({g['miss_tpots'].median():.1f}"
            f" TPOTs, quartiles {g['miss_tpots'].quantile(0.25):.1f} / {g['miss_tpots'].quantile(0.75):.1f});"
            f" KV over one NIC {g['kv_nic_ms'].median():.1f} ms"
        )
    for name in ("tpot_ms", "prefill_load", "isl", "clients"):
        ok = t[[name, "miss_ms", "miss_tpots"]].dropna()
        if len(ok) > 2:
            rho_ms = ok[name].rank().corr(ok["miss_ms"].rank())
            rho_t = ok[name].rank().corr(ok["miss_tpots"].rank())
            lines.append(f"Spearman with {name}: miss ms {rho_ms:+.2f}, miss TPOTs {rho_t:+.2f} ({len(ok)} rows)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=Path, required=True, help="a coverage.py --json (measured and simulated rows)")
    with pd.option_context("display.width", 220):
        print("whole file, measured only: rows with a decode slot per client, TTFT in measured TPOTs by fill")
        print(fill_table().round(1).to_string())
    t = residual_table(ap.parse_args().ids)
    if t.empty:
        print("no TensorRT-LLM disagg row with room in its decode pool in that file", file=sys.stderr)
        raise SystemExit(2)
    with pd.option_context("display.width", 220, "display.max_rows", 200):
        print(t.sort_values(["isl", "miss_tpots"]).round(2).to_string(index=False))
    print(summary(t))


if __name__ == "__main__":
    main()

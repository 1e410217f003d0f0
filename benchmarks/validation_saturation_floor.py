"""The saturation flag on each side's queue, not on its TTFT (branch s14-sat): a row's TTFT less the same
deployment's TTFT at low load, on each side, so that a per-request time one side lacks is not read as a queue.

Why. `validation_saturation.side` flags a side whose mean TTFT is over 1 s and 3x the other's. In a closed loop of
C clients (no think time) Little's law gives C = X (TTFT + S), and the clients waiting before their first token are
X x TTFT; only the load-dependent part of TTFT is a queue (W, with X x W clients queued). A time every request pays
whatever the load (front end, hand-offs, the first wave's cold start: COVERAGE.md, s13-ttft: "a per-request time of
the deployment", flat from 4 to 64 clients, 46-390 ms on TensorRT-LLM agg rows, seconds on some disaggregated
deployments) is in the measured TTFT and not in servesim's, so the TTFT proxy calls rows "saturated in the
measurement only" where the engine did not queue (e.g. TensorRT-LLM DeepSeek-R1 B200 disagg 1k/1k: 2.15 s at 4
clients, 1.88 s at 1,024).

How. Where the measurement has the same deployment (`key`: every column but the load, plus release, image and
worker counts) at few clients (`LOW_CLIENTS`, and at most half the row's), that row is replayed exactly as the
validation replays rows, and each side's queue is W = max(0, TTFT - that side's TTFT on the low-load row): the
per-request time cancels on the side that has it, servesim's own prefill floor on its side. The flag is `side` on
(W measured, W simulated): the same 1 s / 3x test, on queues. Rows without a usable low-load row (none, or its
duplicates disagree by over `AGREE`x, i.e. several deployments under one key) keep the TTFT proxy (floor 0 on both
sides): no evidence either way.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

import pandas as pd

from benchmarks import coverage

# s13-ttft's low-load pairs are at 4 or 8 clients: "at 4-8 clients the loop barely queues" (COVERAGE.md, s13-ttft)
LOW_CLIENTS = 8
AGREE = 2.0  # duplicates of the low-load row further apart than this: two deployments share the key, no floor


def key(row: pd.Series) -> str:
    """One deployment: coverage.CONFIG_KEYS (model, GPU, engine, mode, precision, layouts), the lengths, the
    release and image (or workflow), the worker counts and the campaign; not the clients."""
    src = str(row["silicon_data_source"])
    image = re.search(r"(?:image=|workflow_run_id=\d+; )(\S+)", src)
    parts = [str(row[k]) for k in (*coverage.CONFIG_KEYS, "isl", "osl", "backend_version")]
    parts += [str(row.get("prefill_num_workers")), str(row.get("decode_num_workers"))]
    parts += [image.group(1) if image else "", coverage.source(row)]
    return "|".join(parts)


def low_row(df: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """The deployment's lightest-load row (at most LOW_CLIENTS and at most half the row's clients), the one whose
    TTFT is the median of its duplicates; None if there is none or its duplicates disagree by over AGREE x."""
    c = coverage.concurrency(row)
    k = key(row)
    same = df[df["_key"] == k]
    same = same[(same["_c"] <= min(LOW_CLIENTS, c / 2)) & (same["_c"] < c)]
    if same.empty:
        return None
    lo = same[same["_c"] == same["_c"].min()].sort_values("silicon_ttft_ms")
    t = lo["silicon_ttft_ms"]
    if t.max() > AGREE * t.min():
        return None
    return lo.iloc[(len(lo) - 1) // 2]


def table(csv: Any) -> pd.DataFrame:
    """silicon_sample.csv with each row's deployment key and clients (for `low_row`)."""
    df = pd.read_csv(csv).drop_duplicates("id")
    df["_key"] = [key(r) for _, r in df.iterrows()]
    df["_c"] = [coverage.concurrency(r) for _, r in df.iterrows()]
    return df.set_index("id", drop=False)


@cache
def _simulated_ttft(rid: str, csv: str) -> float:
    """servesim's mean TTFT of one silicon row, replayed as benchmarks/validation_silicon replays it."""
    from benchmarks.validation_silicon import _replay, observed_row, scenario_for

    row = _rows(csv).loc[rid]
    sc, _ = scenario_for(row)
    if sc is None:
        return math.nan
    return float(_replay(observed_row(row, sc), sc)["ttft"]["simulated_s"])


@cache
def _rows(csv: str) -> pd.DataFrame:
    return table(csv)


def queue_s(ttft_s: float, floor_s: float) -> float:
    """One side's queue wait: its mean TTFT above its own TTFT at low load on the same deployment (>= 0; the floor
    is 0 where none is read, which is the TTFT proxy)."""
    if not math.isfinite(floor_s):
        return ttft_s
    return max(0.0, ttft_s - floor_s)


def corrected(r: dict[str, Any], floor: dict[str, Any] | None) -> dict[str, Any]:
    """The replay record with each side's TTFT replaced by its queue wait (`queue_s`), for `side`."""
    if floor is None:
        return r
    m = queue_s(r["ttft"]["measured_s"], floor["measured_s"])
    s = queue_s(r["ttft"]["simulated_s"], floor["simulated_s"])
    return {**r, "ttft": {**r["ttft"], "measured_s": m, "simulated_s": s}}


def floors(res: dict[str, Any], csv: Any, sat_s: float) -> dict[str, dict[str, Any]]:
    """Row id -> {low: id, clients, measured_s, simulated_s} (the low-load row's mean TTFTs) for every replayed
    row where either side's TTFT is over `sat_s` (no other row can be flagged) and its deployment has a usable
    low-load row."""
    df = _rows(str(csv))
    out: dict[str, dict[str, Any]] = {}
    for g in res["silicon"]["groups"].values():
        for rid, r in g["presets"].items():
            if max(r["ttft"]["measured_s"], r["ttft"]["simulated_s"]) <= sat_s or rid not in df.index:
                continue
            lo = low_row(df, df.loc[rid])
            if lo is None:
                continue
            m_low = float(lo["silicon_ttft_ms"]) / 1e3
            s_low = _simulated_ttft(str(lo["id"]), str(csv))
            if not math.isfinite(s_low):  # no replay of the low-load row: one side's floor alone would bias the test
                continue
            out[rid] = {
                "low": str(lo["id"]),
                "clients": int(lo["_c"]),
                "measured_s": m_low,
                "simulated_s": s_low,
            }
    return out


KNEE = 0.5  # elasticity below this: past the closed loop's knee (see `elasticity`)


def throughput(ttft_s: float, tpot_s: float, osl: int, clients: int) -> float:
    """Requests per second of a closed loop by Little's law, clients / (TTFT + decode time), the decode time
    TPOT x (0.9 osl - 1) as `validation_saturation.in_service` takes it (no think time in InferenceX's client)."""
    from benchmarks.coverage import RANGE_RATIO

    return clients / (ttft_s + tpot_s * ((1 + RANGE_RATIO) / 2 * osl - 1))


def elasticity(df: pd.DataFrame, row: pd.Series) -> tuple[float, int]:
    """(d ln X / d ln C, the lighter clients) of the measured throughput between the deployment's next lighter
    concurrency and this row; (nan, 0) where there is none or its duplicates disagree by over AGREE x. Below the
    knee of a closed loop X grows with C (elasticity near 1); past it the engine serves at its cap and extra clients
    only queue (near 0; below 0 when the engine slows as it is loaded). KNEE = 0.5: halfway, more of each added
    client turns into latency than into throughput."""
    c = coverage.concurrency(row)
    same = df[(df["_key"] == key(row)) & (df["_c"] < c)]
    if same.empty:
        return math.nan, 0
    lo = same[same["_c"] == same["_c"].max()].sort_values("silicon_ttft_ms")
    if lo["silicon_ttft_ms"].max() > AGREE * lo["silicon_ttft_ms"].min():
        return math.nan, 0
    p = lo.iloc[(len(lo) - 1) // 2]
    osl = int(row["osl"])
    x1 = throughput(float(p["silicon_ttft_ms"]) / 1e3, float(p["silicon_tpot_ms"]) / 1e3, osl, int(p["_c"]))
    x2 = throughput(float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3, osl, c)
    return math.log(x2 / x1) / math.log(c / int(p["_c"])), int(p["_c"])


def measured_elasticity(rid: str, csv: Any) -> tuple[float, int]:
    df = _rows(str(csv))
    return elasticity(df, df.loc[rid]) if rid in df.index else (math.nan, 0)

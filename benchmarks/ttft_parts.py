"""The pure parts of benchmarks/ttft_gap.py (no simulation, no coverage.py import), kept apart so tests load them.

`release`: which engine or Dynamo runtime image a silicon row names. `parts_of`: a simulated requests table's mean
TTFT split into the named parts of the first-token path; `waves`: its first wave against the rest.
"""

from __future__ import annotations

import re

import pandas as pd


def release(src: str) -> str:
    """The engine or Dynamo runtime image the row names (`...:0.8.1.post2`), else its campaign tag."""
    tail = src.split(";")[-1].strip()
    m = re.search(r"[\w.\-/#=]+:([\w.\-]+)$", tail)
    if m and "/" in tail:
        return m.group(1)
    m = re.search(r"dynamo_version=([\w.]+)", src)
    return f"dynamo {m.group(1)}" if m else "-"


def parts_of(df: pd.DataFrame, clients: int) -> dict[str, float]:
    """Mean simulated parts of the client's TTFT (ms), and the first wave's and the rest's mean TTFT."""
    q = df["first_scheduled_s"] - df["arrival_s"]
    p = df["first_token_s"] - df["first_scheduled_s"]
    kv = df["kv_transfer_s"].fillna(0.0) if "kv_transfer_s" in df else 0.0 * q
    w = df["decode_wait_s"].fillna(0.0) if "decode_wait_s" in df else 0.0 * q
    rest = df["ttft_s"] - q - p - kv - w
    named = {"queue": q, "prefill": p, "kv": kv, "wait": w, "rest": rest}
    out = {k: 1e3 * float(v.mean()) for k, v in named.items()}
    first, later = waves(df, clients)
    return out | {"first_wave": 1e3 * first, "later": 1e3 * later}


def waves(df: pd.DataFrame, clients: int) -> tuple[float, float]:
    """Mean TTFT (s) of the first wave (the `clients` requests sent first, at t = 0 in a closed loop) and of the
    rest: the start-up burst against the loop's steady state."""
    t = df.sort_values("arrival_s")["ttft_s"].to_numpy()
    return float(t[:clients].mean()), float(t[clients:].mean())

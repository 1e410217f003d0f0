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


def pair_table(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One line per (short, long) prompt pair of simulated rows (`prompt` column "short" / "long"): measured and
    simulated mean TTFT at the short prompt, their slopes in ms per 1,000 prompt tokens (the mean prompt is 0.9 x
    isl under the client's range ratio 0.8, the same factor on both sides), and the miss split into the short
    prompt's (per request) and the slope's (per prompt token)."""
    cols = ["isl", "measured_ms", "sim_ms"]
    keyed = rows.assign(**{k: rows[k].astype(str) for k in keys})  # NaN keys (no attention DP listed) as "nan"
    short = keyed[keyed["prompt"] == "short"].drop_duplicates(keys).set_index(keys)[cols]
    long = keyed[keyed["prompt"] == "long"].drop_duplicates(keys).set_index(keys)[cols]
    wide = pd.concat({"short": short, "long": long}, axis=1, join="inner").swaplevel(axis=1)
    out = pd.DataFrame(index=wide.index)
    ktok = 0.9 * (wide[("isl", "long")] - wide[("isl", "short")]) / 1e3
    out["meas_short"], out["sim_short"] = wide[("measured_ms", "short")], wide[("sim_ms", "short")]
    out["meas_long"], out["sim_long"] = wide[("measured_ms", "long")], wide[("sim_ms", "long")]
    out["meas_slope"] = (out["meas_long"] - out["meas_short"]) / ktok
    out["sim_slope"] = (out["sim_long"] - out["sim_short"]) / ktok
    out["miss_short"] = out["meas_short"] - out["sim_short"]
    out["miss_long"] = out["meas_long"] - out["sim_long"]
    out["miss_slope"] = out["meas_slope"] - out["sim_slope"]
    out["slope_ratio"] = out["meas_slope"] / out["sim_slope"]
    return out.reset_index()


def pair_tests(pairs: pd.DataFrame) -> list[str]:
    """Each candidate mechanism's prediction on the pairs, per backend, with the number that decides it."""
    lines = []
    for backend, g in pairs.groupby("backend"):
        if g.empty:
            continue
        share = (g["miss_short"] / g["miss_long"]).where(g["miss_long"] > 0)
        by_gpu = g.groupby("system")["miss_slope"].median().round(1).to_dict()
        lines.append(
            f"{backend}: {len(g)} pairs; miss at the short prompt {g['miss_short'].median():.0f} ms, at the long "
            f"{g['miss_long'].median():.0f} ms (short / long {share.median():.2f}: the share paid per request); "
            f"slope miss {g['miss_slope'].median():+.1f} ms per 1k tokens (by GPU {by_gpu}; a host-side per-token "
            f"cost is one number on every GPU); measured / simulated slope {g['slope_ratio'].median():.2f}"
        )
    return lines


def carry_table(high: pd.DataFrame, low: pd.DataFrame, cfg: list[str]) -> pd.DataFrame:
    """Rows simulated at higher load (`high`) with their configuration's low-load miss at the same prompt
    (`low`: the median over its low-load rows of measured - simulated mean TTFT, ms): the miss, the low-load miss,
    what is left (`rest`), and the signed TTFT error without (`err`) and with the low-load miss added (`err_low`).
    A diagnostic of whether the miss is a per-request constant of the deployment, not a model."""
    keyed_low = low.assign(**{k: low[k].astype(str) for k in cfg}, miss=low["measured_ms"] - low["sim_ms"])
    grouped = keyed_low.groupby([*cfg, "prompt"])
    per_cfg = pd.concat([grouped["miss"].median().rename("low_miss"),
                         grouped["silicon_tpot_ms"].median().rename("low_tpot_ms")], axis=1)  # fmt: skip
    out = high.assign(**{k: high[k].astype(str) for k in cfg}).join(per_cfg, on=[*cfg, "prompt"], how="inner")
    out["miss"] = out["measured_ms"] - out["sim_ms"]
    out["rest"] = out["miss"] - out["low_miss"]
    out["err"] = out["sim_ms"] / out["measured_ms"] - 1
    out["err_low"] = (out["sim_ms"] + out["low_miss"]) / out["measured_ms"] - 1
    # If the low-load miss were a cost of the prompt's step that the decoders wait for, it would take `stall` of
    # every second (prompts per second x low-load miss; the client's mean output is 0.9 x osl) and stretch the
    # simulated TPOT by 1 / (1 - stall); the measured TPOT / simulated TPOT is what the row shows.
    e2e = out["measured_ms"] + (0.9 * out["osl"] - 1) * out["silicon_tpot_ms"]
    out["stall"] = out["clients"] / e2e * out["low_miss"]
    out["tpot_x_stall"] = (1 / (1 - out["stall"])).where(out["stall"] < 1, float("inf"))
    out["tpot_x_meas"] = out["silicon_tpot_ms"] / out["tpot_ms"]
    # a constant time predicts miss / low-load miss = 1; a number of iterations, the measured TPOT's growth
    out["miss_x"] = out["miss"] / out["low_miss"]
    out["tpot_x_load"] = out["silicon_tpot_ms"] / out["low_tpot_ms"]
    return out

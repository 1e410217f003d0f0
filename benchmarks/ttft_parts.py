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


def load_steps(rows: pd.DataFrame, keys: list[str], waves: int = 10) -> pd.DataFrame:
    """One line per doubling of the load of one deployment and lengths (`keys`, which must not hold `clients`):
    rows at c and 2c clients with measured (`meas_ms`) and simulated (`sim_ms`) mean TTFT, the simulated first
    wave's mean (`first_wave`), measured / simulated TPOT (`meas_tpot`, `sim_tpot`). `rest` is what the load adds
    to the measured mean that it does not add to the simulated one (measured growth - simulated growth, ms): no
    low-load miss is assumed. `burst` is what the simulated start-up burst adds to the mean over the doubling
    (first-wave growth / `waves`: the first wave is 1 in `waves` requests) and `burst_x` = rest / burst, how much
    more the real burst would have to cost than the simulated one to carry the rest alone. `tok_s` is the prompt
    tokens per second the loop sends at 2c (2c / measured E2E x mean prompt 0.9 isl; E2E = TTFT + (0.9 osl - 1)
    x TPOT: the client's lengths are uniform on [0.8 L, L])."""
    out = []
    for _, g in rows.groupby(keys, dropna=False):
        by_c = g.drop_duplicates("clients").set_index("clients").sort_index()
        for c in by_c.index:
            if 2 * c not in by_c.index:
                continue
            lo, hi = by_c.loc[c], by_c.loc[2 * c]
            rec = {k: lo[k] for k in keys} | {"lo": int(c), "hi": int(2 * c)}
            rec["d_meas"] = hi["meas_ms"] - lo["meas_ms"]
            rec["d_sim"] = hi["sim_ms"] - lo["sim_ms"]
            rec["rest"] = rec["d_meas"] - rec["d_sim"]
            rec["burst"] = (hi["first_wave"] - lo["first_wave"]) / waves
            rec["burst_x"] = rec["rest"] / rec["burst"] if rec["burst"] > 0 else float("nan")
            rec["tpot_growth_meas"] = hi["meas_tpot"] / lo["meas_tpot"]
            rec["tpot_growth_sim"] = hi["sim_tpot"] / lo["sim_tpot"]
            e2e_ms = hi["meas_ms"] + (0.9 * hi["osl"] - 1) * hi["meas_tpot"]
            rec["tok_s"] = 2 * c / (e2e_ms / 1e3) * 0.9 * hi["isl"]
            rec |= {k: hi[k] for k in ("kvu_max", "in_sample") if k in hi.index}  # the higher load's
            out.append(rec)
    return pd.DataFrame(out)


def _paired(steps: pd.DataFrame, dep: list[str], a: tuple[int, int], b: tuple[int, int]) -> pd.DataFrame:
    """Doublings of one deployment measured at lengths a and at lengths b ((isl, osl) each), side by side."""
    idx = [*dep, "lo"]
    sa = steps[(steps["isl"] == a[0]) & (steps["osl"] == a[1])].set_index(idx)["rest"]
    sb = steps[(steps["isl"] == b[0]) & (steps["osl"] == b[1])].set_index(idx)["rest"]
    return pd.concat({"a": sa, "b": sb}, axis=1, join="inner")


def load_tests(steps: pd.DataFrame, dep: list[str]) -> list[str]:
    """Each candidate for the load-dependent TTFT (module doc of benchmarks/ttft_load.py) against the doublings,
    per backend; `dep` names a deployment without its lengths and load."""
    lines = []
    short, long_in, long_out = (1024, 1024), (8192, 1024), (1024, 8192)
    for backend, g in steps.groupby("backend"):
        by_len = g.groupby(["isl", "osl"])["rest"]
        table = ", ".join(f"{i}/{o}: {m:.0f} ms (n={n})" for (i, o), m, n in
                          zip(by_len.median().index, by_len.median(), by_len.size(), strict=True))  # fmt: skip
        lines.append(f"{backend}: median rest by isl/osl {table}")
        osl = _paired(g, dep, short, long_out)
        if len(osl):
            lines.append(
                f"  output length (same deployment, doubling, prompt ~1k; {len(osl)} pairs): rest at 1k out "
                f"{osl['a'].median():.0f} ms, at 8k out {osl['b'].median():.0f} ms. A start-up burst or a per-stream "
                "time predicts the same; a queue for the prompt step predicts far less at 8k out (~1/7 the prompts/s)"
            )
        isl = _paired(g, dep, short, long_in)
        if len(isl):
            lines.append(
                f"  prompt length (same deployment, doubling, 1k out; {len(isl)} pairs): rest at 1k in "
                f"{isl['a'].median():.0f} ms, at 8k in {isl['b'].median():.0f} ms. A per-stream time (front end, "
                "responses) predicts the same; a burst or a prompt-step queue predicts more at 8k"
            )
        long = g[(g["isl"] == long_in[0]) & (g["osl"] == long_in[1])]
        second = long.set_index([*dep, "lo"])["rest"]
        first = long.assign(lo=long["lo"] * 2).set_index([*dep, "lo"])["rest"]  # keyed by the doubling after it
        both = pd.concat({"first": first, "second": second}, axis=1, join="inner").dropna()
        if len(both):
            bx = long["burst_x"].median()
            lines.append(
                f"  8k/1k, two doublings in a row ({len(both)} deployments): rest {both['first'].median():.0f} ms, "
                f"then {both['second'].median():.0f} ms. A burst priced too low by one factor grows as the simulated "
                f"first wave does (x2 per doubling); a queue near saturation grows faster. burst_x median {bx:.2f}"
            )
        ok = g.dropna(subset=["rest"])
        if "kvu_max" in ok and len(ok) > 3:
            rho = ok["rest"].corr(ok["kvu_max"], method="spearman")
            lines.append(f"  KV admission: Spearman(rest, simulated peak KV use) {rho:+.2f}")
        if len(ok) > 3:
            tg = ok["tpot_growth_meas"] / ok["tpot_growth_sim"]
            rho_t = ok["rest"].corr(tg, method="spearman")
            rho_k = ok["rest"].corr(ok["tok_s"], method="spearman")
            lines.append(
                f"  Spearman(rest, measured / simulated TPOT growth) {rho_t:+.2f}; (rest, prompt tokens/s) {rho_k:+.2f}"
            )
    return lines


def slope_burst(steps: pd.DataFrame, pairs: pd.DataFrame, cfg: list[str]) -> pd.DataFrame:
    """The doublings (`load_steps`) of the deployments that have low-load prompt pairs (`pair_table` output), with
    what a prompt step priced too low by the deployment's own low-load factor (median measured / simulated slope
    over its pairs, rows at 4-8 clients, none of the doublings' rows) would add through the start-up burst:
    `pred_rest` = (slope_ratio - 1) x burst. A diagnostic of where the load-dependent part comes from, not a model:
    the factor is measured, on other rows of the same deployment."""
    keyed = pairs.assign(**{k: pairs[k].astype(str) for k in cfg})
    ratio = keyed.groupby(cfg)["slope_ratio"].median()
    out = steps.assign(**{k: steps[k].astype(str) for k in cfg}).join(ratio, on=cfg, how="inner")
    out["pred_rest"] = (out["slope_ratio"] - 1) * out["burst"]
    return out

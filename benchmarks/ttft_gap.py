"""Where the mean-TTFT miss sits (COVERAGE.md, "Where the TTFT miss sits (branch s12-ttft)").

    python benchmarks/ttft_gap.py split [--ids benchmarks/results/coverage_results.json]       # no simulation
    python benchmarks/ttft_gap.py tests                                                # measured rows only
    python benchmarks/ttft_gap.py parts --backend trtllm [--ids ...] [--out parts.csv] # simulates the rows
    python benchmarks/ttft_gap.py parts --backend trtllm --oos 30 --out oos.csv       # 30 agg rows off the sample
    python benchmarks/ttft_gap.py steady --parts parts.csv                             # the loop's steady state

`split`: measured vs simulated mean TTFT of a coverage JSON's rows by backend x mode and by release, prompt
length, client count and clients per decode slot, as medians of the signed error, of the miss in ms and of the
miss in the row's own measured TPOTs. `tests`: each hypothesis about the miss as a prediction on the whole
silicon file's measured rows (no simulation), with the number that refutes or keeps it. `parts`: each row
simulated as coverage.py does, its mean simulated TTFT split into queue before the first schedule, prefill, KV
copy, decode admission wait and the rest (first decode step, front end, stream interval), and its first wave
(the `clients` requests sent at t = 0) against the other nine. Nothing is fitted; all three only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from coverage_trt_probe import simulate_kept
from ttft_parts import parts_of, release

BUCKETS = [0, 8, 32, 128, 100_000]


def joined(ids: Path) -> pd.DataFrame:
    """A coverage JSON's simulated rows with the silicon file's columns and the derived miss columns."""
    per_row = pd.DataFrame(json.loads(ids.read_text())["errors"]["per_row"])
    csv = pd.read_csv(cov.CSV)
    df = per_row.merge(csv.drop(columns=[c for c in per_row if c in csv and c != "id"]), on="id")
    df["miss_ms"] = df["silicon_ttft_ms"] - df["ttft_ms"]
    df["miss_tpots"] = df["miss_ms"] / df["silicon_tpot_ms"]
    df["release"] = df["silicon_data_source"].map(release)
    df["clients_b"] = pd.cut(df["clients"], BUCKETS).astype(str)
    slots = df["batch_size"] * df["attention_dp_size"].fillna(1)
    df["clients_per_slot"] = np.where(df["mode"] == "agg", (df["clients"] / slots).round(2), np.nan)
    return df


def table(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return (
        df.groupby(by, dropna=False)
        .agg(
            rows=("id", "size"),
            measured_ms=("silicon_ttft_ms", "median"),
            sim_ms=("ttft_ms", "median"),
            signed=("ttft_err", "median"),
            abs_err=("ttft_err", lambda s: s.abs().median()),
            miss_ms=("miss_ms", "median"),
            miss_tpots=("miss_tpots", "median"),
        )
        .round(3)
    )


def split(args: argparse.Namespace) -> None:
    df = joined(args.ids)
    for by in (["backend", "mode"], ["backend", "mode", "clients_b"], ["backend", "mode", "isl"],
               ["backend", "mode", "release"], ["backend", "clients_per_slot"]):  # fmt: skip
        sel = df if by[-1] != "clients_per_slot" else df[df["mode"] == "agg"]
        print(f"\n== by {' x '.join(by)}\n{table(sel, by).to_string()}")
    print("\n== log(miss_ms) ~ isl^a clients^b tpot^c over rows with a positive miss (per-request constant: a = b = 0)")
    for (b, m), g in df[df["miss_ms"] > 0].groupby(["backend", "mode"]):
        if len(g) < 6:
            continue
        x = np.column_stack([np.ones(len(g)), *(np.log(g[k]) for k in ("isl", "clients", "silicon_tpot_ms"))])
        y = np.log(g["miss_ms"].to_numpy())
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        r2 = 1 - float(np.sum((y - x @ coef) ** 2) / np.sum((y - y.mean()) ** 2))
        print(f"{b:7s} {m:7s} rows {len(g):3d}  a {coef[1]:+.2f}  b {coef[2]:+.2f}  c {coef[3]:+.2f}  R2 {r2:.2f}")


def tests(_: argparse.Namespace) -> None:
    """Measured-only predictions (the whole silicon file)."""
    df = pd.read_csv(cov.CSV)
    df["clients"] = df.apply(cov.concurrency, axis=1)
    df["release"] = df["silicon_data_source"].map(release)
    df["e2e_ms"] = df["silicon_ttft_ms"] + (0.9 * df["osl"] - 1) * df["silicon_tpot_ms"]
    # (1) disagg hand-off as a wait for the prefill worker's next arrival (an idle executor that blocks on its
    # request queue while a finished context's KV is in flight): TTFT ~ the interval between arrivals at one
    # prefill worker, P x E2E / clients, at every load; the ratio TTFT / interval should sit near 0.5-1.
    d = df[(df["mode"] == "disagg") & df["prefill_num_workers"].notna()].copy()
    d["ratio"] = d["silicon_ttft_ms"] / (d["prefill_num_workers"] * d["e2e_ms"] / d["clients"])
    q = d.groupby(["backend", "release"])["ratio"].describe(percentiles=[0.25, 0.5, 0.75])
    print("== (1) disagg: TTFT / interval between arrivals at one prefill worker (measured)")
    print(q[["count", "25%", "50%", "75%"]].round(2).to_string())
    # (2) per-request constant: within one configuration and prompt length the TTFT at <= 16 clients does not
    # grow with the client count; queueing: it grows at least as the load (clients) does.
    a = df[(df["mode"] == "agg") & (df["clients"] <= 16)].copy()
    a["cfg"] = a.apply(lambda r: "|".join(str(r[k]) for k in cov.CONFIG_KEYS) + f"|{r['isl']}|{r['osl']}", axis=1)
    rows = []
    for (backend, _), g in a.groupby(["backend", "cfg"]):
        g = g.sort_values("clients")
        if g["clients"].nunique() >= 2 and g["clients"].iloc[0] <= 4:
            lo, hi = g.iloc[0], g.iloc[-1]
            rows.append({"backend": backend, "clients_x": hi["clients"] / lo["clients"],
                         "ttft_x": hi["silicon_ttft_ms"] / lo["silicon_ttft_ms"],
                         "tpot_x": hi["silicon_tpot_ms"] / lo["silicon_tpot_ms"]})  # fmt: skip
    r = pd.DataFrame(rows)
    print("\n== (2) agg, <= 16 clients, same configuration and lengths: growth lowest -> highest client count")
    print(r.groupby("backend").median().round(2).assign(configs=r.groupby("backend").size()).to_string())
    one_off(df)


def one_off(df: pd.DataFrame) -> None:
    """(3) A one-off cost W paid by the first wave only (a cold start the multi-node client does not warm away):
    the mean over 10 x c requests is base + W / 10 whatever c, so within one disagg configuration and lengths, at
    <= 64 clients (base small), the measured mean TTFT should be about flat across client counts."""
    d = df[(df["mode"] == "disagg") & (df["clients"] <= 64)].copy()
    d["cfg"] = d["silicon_data_source"].str.extract(r"config_id=(\d+)", expand=False)
    d = d[d["cfg"].notna()]
    rows = []
    for (backend, rel, *_), g in d.groupby(["backend", "release", "cfg", "isl", "osl"]):
        if g["clients"].nunique() >= 2:
            t = g.sort_values("clients")["silicon_ttft_ms"]
            rows.append({"backend": backend, "release": rel, "max_over_min": t.max() / t.min(),
                         "last_over_first": t.iloc[-1] / t.iloc[0], "median_ms": t.median()})  # fmt: skip
    r = pd.DataFrame(rows)
    print("\n== (3) disagg, <= 64 clients, one configuration and lengths: spread of the measured mean TTFT")
    g = r.groupby(["backend", "release"])
    print(g.median().round(2).assign(groups=g.size()).to_string())


def _rows(args: argparse.Namespace, csv: pd.DataFrame) -> pd.DataFrame:
    """The rows `parts` simulates: the coverage JSON's (`--ids`), or with `--oos N` N expressible agg rows of the
    backend drawn outside it (seeded: `SeedSequence(12)`), so the sample's findings can be checked off the sample."""
    ids = [r["id"] for r in json.loads(args.ids.read_text())["errors"]["per_row"]]
    if not args.oos:
        sel = csv.loc[[i for i in ids if i in csv.index]]
        return sel[(sel["backend"] == args.backend) if args.backend else sel["backend"].notna()]
    pool = csv[~csv.index.isin(ids) & (csv["mode"] == "agg")]
    pool = pool[(pool["backend"] == args.backend) if args.backend else pool["backend"].notna()]
    rng = np.random.default_rng(np.random.SeedSequence(12))
    picked: list[str] = []
    for i in rng.permutation(len(pool)):
        if len(picked) == args.oos:
            break
        if cov.expressible(pool.iloc[i]) is None:
            picked.append(str(pool.index[i]))
    return pool.loc[picked]


def parts(args: argparse.Namespace) -> None:
    csv = pd.read_csv(cov.CSV).set_index("id", drop=False)
    out = []
    for _, row in _rows(args, csv).iterrows():
        c = cov.concurrency(row)
        df = simulate_kept(row)[2]
        rec = {
            "id": row["id"],
            "mode": row["mode"],
            "clients": c,
            "isl": int(row["isl"]),
            "osl": int(row["osl"]),
            "measured_ms": float(row["silicon_ttft_ms"]),
            "sim_ms": 1e3 * float(df["ttft_s"].mean()),
            "silicon_tpot_ms": float(row["silicon_tpot_ms"]),
            "tpot_ms": 1e3 * float(np.nanmean(df["tpot_s"])),
        }
        rec |= parts_of(df, c)  # fmt: skip
        rec["later_err"] = rec["later"] / rec["measured_ms"] - 1
        out.append(rec)
        print({k: (round(v, 1) if isinstance(v, float) else v) for k, v in rec.items()}, flush=True)
    res = pd.DataFrame(out)
    if args.out:
        res.to_csv(args.out, index=False)
    res["clients_b"] = pd.cut(res["clients"], BUCKETS).astype(str)
    cols = ["measured_ms", "sim_ms", "queue", "prefill", "kv", "wait", "rest", "first_wave", "later", "later_err"]
    print(res.groupby(["mode", "clients_b"])[cols].median().round(2).to_string())


def steady(args: argparse.Namespace) -> None:
    """The steady state of the loop, from a `parts` CSV: the measured mean of the nine later waves estimated as
    (10 x measured mean - simulated first wave) / 9 (the real first wave taken as the simulated one), its miss
    against the simulated later waves, and the test of a context step priced too low: if every prompt step cost
    D more than priced, the decoders would lose D per prompt, and with prompts arriving at c / E2E per second the
    measured TPOT would be the simulated one / (1 - rate x D), so D = (1 - TPOT_sim / TPOT_meas) / rate should
    match the later waves' TTFT miss."""
    d = pd.read_csv(args.parts)
    if "tpot_ms" not in d:  # a CSV from before `parts` kept the TPOTs: take them from the coverage JSON
        d = d.merge(joined(args.ids)[["id", "osl", "tpot_ms", "silicon_tpot_ms"]], on="id")
    d = d[d["mode"] == "agg"].copy()
    e2e = d["measured_ms"] + (0.9 * d["osl"] - 1) * d["silicon_tpot_ms"]
    rate = d["clients"] / e2e
    waves = cov.WAVES  # requests per client in the loop (InferenceX: 10)
    d["later_measured"] = (waves * d["measured_ms"] - d["first_wave"]) / (waves - 1)
    d["later_miss"] = d["later_measured"] - d["later"]
    d["step_excess_from_tpot"] = (1 - d["tpot_ms"] / d["silicon_tpot_ms"]) / rate
    d["later_miss_tpots"] = d["later_miss"] / d["silicon_tpot_ms"]
    d["clients_b"] = pd.cut(d["clients"], BUCKETS).astype(str)
    cols = ["measured_ms", "sim_ms", "first_wave", "later", "later_measured", "later_miss", "later_miss_tpots"]
    print(d.groupby("clients_b")[[*cols, "step_excess_from_tpot"]].median().round(1).to_string())
    share = (d["first_wave"] / waves) / d["sim_ms"]
    print(f"first wave's share of the simulated mean: median {share.median():.0%}")
    for k in ("step_excess_from_tpot", "clients", "isl", "silicon_tpot_ms"):
        print(f"Spearman(later_miss, {k}) = {d['later_miss'].corr(d[k], method='spearman'):+.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("split", "tests", "parts", "steady"))
    ap.add_argument("--ids", type=Path, default=cov.ROOT / "benchmarks" / "results" / "coverage_results.json")
    ap.add_argument("--backend", default="")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--oos", type=int, default=0, help="parts: N agg rows drawn outside the --ids sample")
    ap.add_argument("--parts", type=Path, help="steady: a CSV written by `parts --out`")
    args = ap.parse_args()
    if args.what == "steady" and args.parts is None:
        ap.error("steady needs --parts CSV (written by `parts --out`)")
    for path in (args.ids, args.parts):
        if path is not None and not path.is_file():
            ap.error(f"{path}: no such file")
    pd.set_option("display.width", 220)
    pd.set_option("display.max_rows", 300)
    {"split": split, "tests": tests, "parts": parts, "steady": steady}[args.what](args)


if __name__ == "__main__":
    main()

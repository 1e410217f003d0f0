"""TPOT error by group over many silicon rows, quicker than coverage.py: fewer requests per client.

    python benchmarks/tpot_groups.py --rows 300 --waves 3 --json /tmp/tpot.json
    python benchmarks/tpot_groups.py --report /tmp/tpot.json [--other /tmp/tpot_after.json]

Rows are drawn at random (seed 1) from the expressible rows with at most 256 clients, outside coverage.py's
stratified 149 (so the groups seen here are not the ones the headline numbers report), and simulated with
coverage.py's InferenceX protocol except `--waves` requests per client instead of 10 (TPOT is a per-token
mean: fewer waves move it little; `--check-waves` reruns a subset at 10 to say how little).
Groups: backend x model family x GPU x concurrency band, and the row's deployment reading (coverage_disagg:
agg; disagg workers recorded, read from InferenceX's configuration with / without MTP, or unknown).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov

BANDS = [0, 8, 64, 256, 10**6]
BAND_NAMES = ["<=8", "9-64", "65-256", ">256"]


def family(model: str) -> str:
    m = model.lower()
    for key in ("deepseek", "qwen3.5", "qwen3-235b", "qwen3-32b", "llama", "gpt-oss", "kimi", "minimax", "glm"):
        if key in m:
            return key
    return m


def stratified_ids(df: pd.DataFrame, seed: int = 0, sample: int = 200) -> set[str]:
    """The ids coverage.py --sample 200 simulates (same draw)."""
    ok = df[df["ok"] & (df.apply(cov.concurrency, axis=1) <= cov.MAX_CLIENTS)]
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    strata = ok.groupby(["model_path", "system", "mode"])
    per = max(1, sample // max(1, strata.ngroups))
    picks = [g.iloc[rng.permutation(len(g))[:per]] for _, g in strata]
    return set(pd.concat(picks).head(sample)["id"])


def rows(n: int, seed: int, max_clients: int) -> pd.DataFrame:
    df = pd.read_csv(cov.CSV)
    df["ok"] = [cov.expressible(r) is None for _, r in df.iterrows()]
    inside = stratified_ids(df)
    pool = df[df["ok"] & ~df["id"].isin(inside) & (df.apply(cov.concurrency, axis=1) <= max_clients)]
    return pool.sample(min(n, len(pool)), random_state=seed)


def run(sample: pd.DataFrame, waves: int) -> pd.DataFrame:
    cov.WAVES = waves
    out = []
    for _, r in sample.iterrows():
        t0 = time.time()
        ttft, tpot = cov.simulate(r)
        out.append(
            {
                "id": r["id"],
                "backend": r["backend"],
                "family": family(str(r["model_path"])),
                "model": r["model_path"],
                "gpu": r["system"],
                "mode": r["mode"],
                "source": cov.source(r),
                "deployment": cov.group(r),
                "clients": cov.concurrency(r),
                "isl": int(r["isl"]),
                "osl": int(r["osl"]),
                "tpot_ms": tpot * 1e3,
                "silicon_tpot_ms": float(r["silicon_tpot_ms"]),
                "tpot_err": tpot * 1e3 / float(r["silicon_tpot_ms"]) - 1,
                "ttft_err": ttft * 1e3 / float(r["silicon_ttft_ms"]) - 1,
                "wall_s": time.time() - t0,
            }
        )
        print(f"{len(out)}/{len(sample)} {r['id'][:70]} {out[-1]['tpot_err']:+.1%}", flush=True)
    return pd.DataFrame(out)


def report(res: pd.DataFrame, other: pd.DataFrame | None = None) -> str:
    res = res.copy()
    res["band"] = pd.cut(res["clients"], BANDS, labels=BAND_NAMES).astype(str)
    if other is not None:
        res = res.merge(other[["id", "tpot_err"]].rename(columns={"tpot_err": "after"}), on="id")
    err = res["tpot_err"]
    lines = [f"rows {len(res)}: median |TPOT| {err.abs().median():.1%}, signed {err.median():+.1%}"]
    if other is not None:
        lines[0] += f" -> {res['after'].abs().median():.1%}, signed {res['after'].median():+.1%}"
    by = [["band"], ["backend"], ["family"], ["gpu"], ["mode"], ["backend", "family", "mode"]]
    if "deployment" in res.columns:  # coverage_disagg's reading of the row (files from before it lack it)
        by += [["deployment"], ["backend", "deployment"]]
    lines += [group_table(res, keys, "tpot_err", other is not None) for keys in by]
    return "\n\n".join(lines)


def group_stats(
    res: pd.DataFrame, keys: str | list[str], err: str, after: bool, observed: bool = False
) -> pd.DataFrame:
    """Rows (`n`), median |error| (`abs`) and median signed error (`signed`) of column `err` per group of `keys`, and
    of column `after` beside them (`abs_after`, `signed_after`) where `after`."""
    g = res.groupby(keys, observed=observed)
    tab = pd.DataFrame({"n": g.size(), "abs": g[err].apply(lambda x: x.abs().median()), "signed": g[err].median()})
    if after:
        tab["abs_after"] = g["after"].apply(lambda x: x.abs().median())
        tab["signed_after"] = g["after"].median()
    return tab


def group_table(res: pd.DataFrame, keys: str | list[str], err: str, after: bool) -> str:
    """`group_stats` as text."""
    return str(group_stats(res, keys, err, after).round(3).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--waves", type=int, default=3)
    ap.add_argument("--max-clients", type=int, default=256)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--ids", type=Path, help="simulate exactly the ids of this earlier --json")
    ap.add_argument("--report", type=Path)
    ap.add_argument("--other", type=Path)
    a = ap.parse_args()
    if a.report:
        other = pd.read_json(a.other) if a.other else None
        print(report(pd.read_json(a.report), other))
        return
    if a.ids:
        want = pd.read_json(a.ids)["id"]
        df = pd.read_csv(cov.CSV)
        sample = df.set_index("id").loc[want].reset_index()
        ok = [cov.expressible(r) is None for _, r in sample.iterrows()]  # rows a new reading made inexpressible
        print(f"--ids: {len(sample) - sum(ok)} of {len(sample)} rows no longer expressible, left out")
        sample = sample[ok]
    else:
        sample = rows(a.rows, a.seed, a.max_clients)
    res = run(sample, a.waves)
    if a.json:
        res.to_json(a.json, orient="records", indent=1)
    print(report(res))


if __name__ == "__main__":
    main()

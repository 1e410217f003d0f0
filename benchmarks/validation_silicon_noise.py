"""The silicon rows' noise floor: repeated measurements of one configuration (same engine, GPU, model, precision,
layout, isl, osl, clients: `validation_silicon.CONFIG`, every other column equal but `backend_version`), each
measurement's mean TTFT / TPOT / E2E against the mean of the others (|x / mean(others) - 1|; for a pair this is
about sqrt(2) x the one-measurement sigma). Same `backend_version` and another `backend_version` reported apart.

    python benchmarks/validation_silicon_noise.py

`calibrate.fit_linear.LOO_TIE` is set from its same-version median (TPOT 1.0 %, E2E 1.0 %).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from benchmarks.validation_silicon import CONFIG, CSV


def spreads() -> pd.DataFrame:
    warnings.filterwarnings("ignore")
    df = pd.read_csv(CSV)
    key = [c for c in df.columns if c not in ("id", "silicon_data_source", "silicon_ttft_ms", "silicon_tpot_ms")]
    for c in key:
        df[c] = df[c].astype(str)
    df = df.assign(ttft_key=df["silicon_ttft_ms"].round(0), tpot_key=df["silicon_tpot_ms"].round(1))
    df = df.drop_duplicates(subset=[*key, "ttft_key", "tpot_key"])  # a measurement listed twice is one
    df["e2e"] = df.silicon_ttft_ms + df.silicon_tpot_ms * (df.osl.astype(float) - 1)
    out = []
    for same_version in (True, False):
        for k, gg in df.groupby(CONFIG):
            if len(gg) < 2:
                continue
            one = gg.backend_version.nunique() == 1
            if same_version != one or any(gg[c].nunique() > 1 for c in key if c != "backend_version"):
                continue
            for m in ("silicon_ttft_ms", "silicon_tpot_ms", "e2e"):
                v = gg[m].to_numpy(dtype=float)
                for i in range(len(v)):
                    out.append((same_version, k[0], k[5], m, abs(v[i] / np.delete(v, i).mean() - 1)))
    return pd.DataFrame(out, columns=["same_version", "backend", "mode", "m", "err"])


if __name__ == "__main__":
    o = spreads()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    print(o.groupby(["same_version", "m"]).err.agg(["median", "count"]).unstack())
    print(o[o.same_version].groupby(["backend", "mode", "m"]).err.agg(["median", "count"]).unstack())

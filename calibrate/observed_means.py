"""Means-only closed-loop runs: one line per run, the way load-test summaries (aiconfigurator's silicon rows, a
`bench serve` summary without per-request arrays) report them. `calibrate fit-run` fits these with the linearised
fit (`calibrate.fit_means`); per-request logs go to `calibrate.fit_run`.

CSV header (extra columns ignored): `clients,prompt_tokens,output_tokens,ttft_s,tpot_s`, optional `num_requests`
(default 10 x clients, InferenceX's load: `--num-prompts $((CONC * 10)) --max-concurrency $CONC`,
benchmarks/coverage.py `WAVES`). Each line becomes a closed loop of `clients` clients sending requests of exactly
those lengths; every request carries the line's mean TTFT and TPOT (`ObservedRun.means_only`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from calibrate.observed import ObservedRun, _num
from sim.errors import ServesimError

MEANS_COLUMNS = ("clients", "prompt_tokens", "output_tokens", "ttft_s", "tpot_s")
WAVES = 10  # requests per client when the line gives no num_requests (benchmarks/coverage.py WAVES, InferenceX)


def is_means_csv(path: Path) -> bool:
    """Whether `path` is a means CSV (its header names `clients` and `tpot_s`), not a per-request log."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    with path.open(encoding="utf-8-sig", errors="replace") as f:  # utf-8-sig: a spreadsheet's BOM hides `clients`
        header = [h.strip() for h in f.readline().split(",")]
    return "clients" in header and "tpot_s" in header


def read_means_csv(path: Path) -> list[ObservedRun]:
    """One means-only closed-loop run per line (see the module docstring); bad input: file:line, what was expected."""
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig", errors="replace").splitlines()))
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [c for c in MEANS_COLUMNS if c not in header]
    if missing:
        raise ServesimError(f"{path}:1: missing column {missing[0]!r}: expected a header {','.join(MEANS_COLUMNS)}")
    cols = [*MEANS_COLUMNS, *(["num_requests"] if "num_requests" in header else [])]
    out = []
    for ln, rec in enumerate(rows[1:], 2):
        if not "".join(rec).strip():
            continue
        where = f"{path}:{ln}"
        if len(rec) < len(header):
            raise ServesimError(f"{where}: expected {len(header)} fields, found {len(rec)}")
        v: dict[str, float] = {}
        for name in cols:
            try:
                x = float(rec[header.index(name)])
            except ValueError:
                raise ServesimError(
                    f"{where}: column {name!r}: expected a number, found {rec[header.index(name)]!r}"
                ) from None
            integer = name in ("clients", "prompt_tokens", "output_tokens", "num_requests")
            v[name] = _num(where, name, x, integer=integer, lo=0.0 if integer else 1e-9)
        if v["output_tokens"] < 2:  # TPOT is the time between output tokens: one token has none
            raise ServesimError(
                f"{where}: column 'output_tokens': expected an integer >= 2 (TPOT needs two tokens), "
                f"found {rec[header.index('output_tokens')]!r}"
            )
        clients = int(v["clients"])
        n = int(v.get("num_requests", WAVES * clients))
        out_tok = np.full(n, int(v["output_tokens"]), dtype=np.int64)
        ttft = np.full(n, v["ttft_s"])
        prompt = np.full(n, int(v["prompt_tokens"]), dtype=np.int64)
        e2e = ttft + v["tpot_s"] * (out_tok - 1)
        run = ObservedRun(f"{path}:{ln}", "means-csv", prompt, out_tok, ttft, e2e, concurrency=clients, means_only=True)
        out.append(run)
    if not out:
        raise ServesimError(f"{path}:2: no runs after the header")
    return out

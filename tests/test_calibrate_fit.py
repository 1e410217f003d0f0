"""`calibrate fit`: recovers known parameters from synthetic iterations, generalises to held-out rows,
writes a profile that `estimate --profile` and scenarios use, and reports bad input in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import sim  # noqa: F401
from calibrate.fit import Fitter, fit_profile, predict, read_measurements, write_profile
from hwprofiles import catalog
from sim.costmodel.models import ProfileParams, load_profile
from sim.errors import ServesimError
from sim.tools.cli import app

runner = CliRunner()
TRUE = ProfileParams(
    iteration_overhead_s=0.004, seq_overhead_s=3e-5, compute_scale=0.85, memory_scale=0.9, attention_scale=0.7
)


def _rows(prefills, decodes) -> pd.DataFrame:
    rows = [(p, b, 0) for p, b in prefills] + [(0, b, c) for b, c in decodes]
    return pd.DataFrame(rows, columns=["prefill_tokens", "batch_size", "context_tokens"])


def _synthetic(model="llama-2-70b", gpu="a100-80g", tp=4, noise=0.0, seed=0, big=False):
    m, g = catalog.model(model), catalog.gpu(gpu)
    if big:  # held out: larger batches and longer prompts than the fit saw
        df = _rows([(4096, 1), (2048, 4), (8192, 1)], [(192, 2048), (256, 1024), (128, 8000)])
    else:
        df = _rows(
            [(p, b) for p in (128, 512, 1024, 2048) for b in (1, 2)],
            [(b, c) for b in (1, 8, 32, 64) for c in (128, 1024, 4096)],
        )
    t = predict(Fitter(m, g, tp).cost(TRUE), df)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    df["time_ms"] = t * 1e3 * np.exp(rng.normal(0.0, noise, len(t)))
    return df, m, g


def test_fit_recovers_known_parameters():
    df, m, g = _synthetic()
    prof, errs, _ = fit_profile(df, m, g, 4)
    p = prof.params
    assert p.compute_scale == pytest.approx(0.85, rel=0.01)
    assert p.memory_scale == pytest.approx(0.9, rel=0.01)
    assert p.attention_scale == pytest.approx(0.7, rel=0.02)
    assert p.seq_overhead_s == pytest.approx(3e-5, rel=0.05)
    assert p.iteration_overhead_s == pytest.approx(0.004, rel=0.05)
    assert prof.fit["mape_pct"] < 0.1 < prof.fit["mape_before_pct"]
    assert errs["error_pct"].abs().max() < 0.5


def test_fit_generalises_to_larger_batches_and_longer_prompts():
    df, m, g = _synthetic(noise=0.03, seed=1)
    prof, _, fitter = fit_profile(df, m, g, 4)
    held, _, _ = _synthetic(big=True)
    pred = predict(fitter.cost(prof.params), held) * 1e3
    assert np.max(np.abs(pred / held["time_ms"] - 1)) < 0.10


def test_profile_changes_estimate(tmp_path):
    df, m, g = _synthetic()
    prof, _, _ = fit_profile(df, m, g, 4)
    path = write_profile(prof, tmp_path / "p.yaml")
    assert load_profile(path).params == prof.params
    args = [
        "estimate",
        "--model",
        "llama-2-70b",
        "--hardware",
        "a100-80g",
        "--tp",
        "4",
        "--batch-size",
        "32",
        "--context-tokens",
        "1000",
        "--json",
    ]
    plain = json.loads(runner.invoke(app, args).output)["iteration_s"]
    fitted = json.loads(runner.invoke(app, [*args, "--profile", str(path)]).output)["iteration_s"]
    assert fitted != plain
    truth = predict(Fitter(m, g, 4).cost(TRUE), _rows([], [(32, 1000)]))[0]
    assert fitted == pytest.approx(truth, rel=1e-3)


def test_cli_fit_prints_rows_and_writes_profile(tmp_path):
    df, _, _ = _synthetic()
    df.to_csv(tmp_path / "m.csv", index=False)
    held, _, _ = _synthetic(big=True)
    held.to_csv(tmp_path / "t.csv", index=False)
    r = runner.invoke(
        app,
        [
            "calibrate",
            "fit",
            "--measurements",
            str(tmp_path / "m.csv"),
            "--model",
            "llama-2-70b",
            "--hardware",
            "a100-80g",
            "--tp",
            "4",
            "--out",
            str(tmp_path / "p.yaml"),
            "--test",
            str(tmp_path / "t.csv"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "MAPE" in r.output and "held-out" in r.output and "error" in r.output
    assert load_profile(tmp_path / "p.yaml").fit["test_mape_pct"] < 1.0
    bad = runner.invoke(
        app,
        [
            "calibrate",
            "fit",
            "--measurements",
            str(tmp_path / "nope.csv"),
            "--model",
            "llama-2-70b",
            "--hardware",
            "a100-80g",
            "--out",
            str(tmp_path / "q.yaml"),
        ],
    )
    assert bad.exit_code == 2 and "not found" in bad.output and "Traceback" not in bad.output


def test_read_measurements_names_the_bad_line(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("prefill_tokens,batch_size,context_tokens,time_ms\n128,1,0,5.0\n0,x,10,1.0\n")
    with pytest.raises(ServesimError, match=r"m.csv:3: batch_size"):
        read_measurements(p)
    p.write_text("prefill_tokens,batch_size,time_ms\n1,1,1\n")
    with pytest.raises(ServesimError, match="missing column"):
        read_measurements(p)
    p.write_text("prefill_tokens,batch_size,context_tokens,time_ms\n128,1,0,0\n")
    with pytest.raises(ServesimError, match="time_ms: expected a positive number"):
        read_measurements(p)
    with pytest.raises(ServesimError, match="unknown fit parameter"):
        Fitter(catalog.model("llama-2-7b"), catalog.gpu("a100-80g"), 1, free=["speed"])

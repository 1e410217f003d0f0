"""Observed per-request logs: the three readers, malformed input (file:line, exit 2), replay, fit-run, validate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import sim
from calibrate.fit_run import fit_run, overlay, overlay_overrides, write_overlay
from calibrate.observed import read_observed
from calibrate.replay import Replay, compare
from sim.errors import ServesimError
from sim.tools.cli import app
from tests.helpers import scenario, write_csv

runner = CliRunner()
# the shared data lies beside the repository (as CI has it); tests that read it skip where it is absent
GT_DIR = Path(__file__).resolve().parents[2] / "shared/data/ground-truth/llmservingsim/RTXPRO6000/Llama-3.1-8B"


@pytest.fixture
def gt() -> str:
    """The LLMServingSim Llama-3.1-8B run (requests.jsonl folder) of the shared ground truth."""
    if not GT_DIR.exists():
        pytest.skip("shared ground truth not present")
    return str(GT_DIR)


def _truth(tmp_path, base_s: float = 0.02):
    """An 'observed' CSV made by simulating a known engine (linear cost, base_s), and the scenario dict."""
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.exponential(0.15, 40))
    rows = [
        (float(a), int(p), int(o))
        for a, p, o in zip(t, rng.integers(20, 200, 40), rng.integers(2, 40, 40), strict=True)
    ]
    trace = write_csv(tmp_path / "trace.csv", rows)
    cost = {"kind": "linear", "base_s": base_s, "per_prefill_token_s": 1e-4, "per_decode_seq_s": 1e-3}
    sc = scenario(trace, cost=cost, scheduler={"kind": "sarathi", "token_budget": 256})
    df = sim.run(sc).requests
    obs = tmp_path / "observed.csv"
    df[["arrival_s", "prompt_tokens", "output_tokens", "ttft_s", "e2el_s"]].rename(columns={"e2el_s": "e2e_s"}).to_csv(
        obs, index=False, float_format="%.17g"
    )
    return obs, sc, df


def test_csv_reader_round_trips_and_replay_is_exact(tmp_path):
    obs, sc, df = _truth(tmp_path)
    run = read_observed(obs)
    assert len(run) == 40 and run.fmt == "csv" and run.arrival_s is not None
    np.testing.assert_allclose(run.ttft_s, df["ttft_s"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(run.tpot_s, df["tpot_s"].to_numpy(), rtol=1e-9)
    rp = Replay(run, sim.load_scenario(sc))
    cmp = compare(run, rp.simulate(rp.scenario()))
    rp.close()
    for m in ("ttft", "tpot", "e2e"):
        for s in ("mean", "p50", "p90", "p99"):
            assert abs(cmp[m][s]["error_pct"]) < 1e-6, (m, s, cmp[m][s])


def test_fit_run_recovers_a_known_parameter(tmp_path):
    obs, sc, _ = _truth(tmp_path, base_s=0.02)
    run = read_observed(obs)
    wrong = sim.load_scenario(sc, ["cost_model.base_s=0.008"])
    res = fit_run(run, wrong, [("cost_model.base_s", 0.0, 0.05)], max_evals=40)
    assert res.values["cost_model.base_s"] == pytest.approx(0.02, rel=0.03)
    assert abs(res.before[0]["e2e"]["mean"]["error_pct"]) > 20  # the start was far off
    assert abs(res.after[0]["e2e"]["mean"]["error_pct"]) < 2
    doc = overlay(res, [run], None)
    assert doc["fit_run"]["after"][0]["e2e_mean_error_pct"] == pytest.approx(
        res.after[0]["e2e"]["mean"]["error_pct"], 1e-3
    )
    p = tmp_path / "profile.yaml"
    write_overlay(doc, p)
    ov = overlay_overrides(p)
    # the overlay carries the fitted value (6 significant digits); its accuracy is the 3 % asserted above and below
    assert len(ov) == 1 and ov[0].split("=")[0] == "cost_model.base_s"
    assert float(ov[0].split("=")[1]) == pytest.approx(res.values["cost_model.base_s"], rel=1e-5)
    assert sim.load_scenario(sc, ov).cost_model.base_s == pytest.approx(0.02, rel=0.03)


def test_fit_run_without_fittable_fields_asks_for_params(tmp_path):
    obs, sc, _ = _truth(tmp_path)
    with pytest.raises(ServesimError, match="--param"):  # a linear cost model ignores the engine terms
        fit_run(read_observed(obs), sim.load_scenario(sc), None)
    with pytest.raises(ServesimError, match="no field"):
        fit_run(read_observed(obs), sim.load_scenario(sc), [("cost_model.nope", 0, 1)])


def test_vllm_bench_json_reader(tmp_path):
    doc = {
        "date": "20260101-000000",
        "backend": "vllm",
        "model_id": "meta-llama/Llama-3.1-8B",
        "request_rate": "inf",
        "burstiness": 1.0,
        "max_concurrency": 4,
        "input_lens": [100, 200, 50],
        "output_lens": [3, 0, 2],
        "ttfts": [0.05, 0.0, 0.04],
        "itls": [[0.01, 0.02], [], [0.03]],
        "errors": ["", "timeout", ""],
    }
    p = tmp_path / "bench.json"
    p.write_text(json.dumps(doc, indent=2))
    run = read_observed(p)
    assert run.fmt == "vllm-bench" and len(run) == 2 and run.failed == 1 and run.concurrency == 4
    assert run.closed_loop and run.request_rate is None
    np.testing.assert_allclose(run.e2e_s, [0.08, 0.07])
    np.testing.assert_allclose(run.tpot_s, [0.015, 0.03])
    np.testing.assert_allclose(np.sort(run.itl_s), [0.01, 0.02, 0.03])


def test_llmservingsim_jsonl_reader(gt):
    run = read_observed(gt)
    assert len(run) == 300 and run.meta["max_num_seqs"] == 128 and run.meta["tensor_parallel_size"] == 1
    assert run.arrival_s[0] == 0 and np.all(np.diff(run.arrival_s) >= 0)
    assert np.all(run.e2e_s >= run.ttft_s) and np.all(run.ttft_s > 0)


MALFORMED = [
    (
        "a.jsonl",
        '{"input_toks": 5, "output_toks": 2, "queued_ts": 1, "first_token_ts": 2, "last_token_ts": 3}\n'
        '{"input_toks": 5, "output_toks": 2, "queued_ts": 1}\n',
        ":2:",
        "last_token_ts",
    ),
    (
        "b.jsonl",
        '{"input_toks": 5, "output_toks": 2, "queued_ts": 1, "first_token_ts": 2, "last_token_ts": 3}\n'
        '{"input_toks": 5, "output_toks": 2, "queued_ts": 1, "first_token_ts": 0.5, "last_token_ts": 3}\n',
        ":2:",
        "first_token_ts",
    ),
    (
        "c.jsonl",
        '{"input_toks": 5, "output_toks": 2, "queued_ts": 1, "first_token_ts": 2, "last_token_ts": 3}\n'
        '{"input_toks": 5, "output_toks": 2.5, oops\n',
        ":2:",
        "JSON",
    ),
    (
        "d.jsonl",
        '{"input_toks": 0, "output_toks": 2, "queued_ts": 1, "first_token_ts": 2, "last_token_ts": 3}\n',
        ":1:",
        "input_toks",
    ),
    ("e.csv", "arrival_s,prompt_tokens,output_tokens,ttft_s\n0,1,2,0.1\n", ":1:", "e2e_s"),
    ("f.csv", "arrival_s,prompt_tokens,output_tokens,ttft_s,e2e_s\n0,1,2,0.1,0.3\n1,x,2,0.1,0.2\n", ":3:", "prompt"),
    ("g.csv", "arrival_s,prompt_tokens,output_tokens,ttft_s,e2e_s\n0,1,2,0.5,0.3\n", ":2:", "before the first"),
    ("h.csv", "arrival_s,prompt_tokens,output_tokens,ttft_s,e2e_s\n", ":2:", "no requests"),
    (
        "i.json",
        '{\n  "ttfts": [0.1, 0.2],\n  "input_lens": [1],\n  "output_lens": [2, 2],\n  "itls": [[0.1], [0.1]]\n}',
        ":3:",
        "input_lens",
    ),
    ("j.json", '{\n  "ttfts": [0.1],\n  "input_lens": [1],\n  "output_lens": [2]\n}', ":1:", "itls"),
    ("k.json", '{\n  "ttfts": [0.1,\n', ":3:", "JSON"),
    ("l.json", '{"ttfts": [-1], "input_lens": [1], "output_lens": [2], "itls": [[0.1]]}', ":1:", "ttfts"),
    ("m.csv", "", ":1:", "empty"),
]


@pytest.mark.parametrize(("name", "text", "line", "word"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_logs_name_file_and_line(tmp_path, name, text, line, word):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ServesimError) as e:
        read_observed(p)
    msg = str(e.value)
    assert f"{name}{line}" in msg and word in msg, msg
    r = runner.invoke(app, ["validate", "--observed", str(p), "--scenario", "scenarios/quickstart.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output and f"{name}{line}" in r.output.replace("\n", "")


def test_validate_and_fit_run_cli(tmp_path):
    obs, sc, _ = _truth(tmp_path)
    s = tmp_path / "s.yaml"
    s.write_text(yaml.safe_dump(sc))
    r = runner.invoke(app, ["validate", "--observed", str(obs), "--scenario", str(s), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["metrics"]["e2e"]["mean"]["abs_error_pct"] < 1e-6 and doc["simulated_completed"] == 40
    prof = tmp_path / "p.yaml"
    r = runner.invoke(
        app,
        [
            "calibrate",
            "fit-run",
            "--observed",
            str(obs),
            "--scenario",
            str(s),
            "--out",
            str(prof),
            "--param",
            "cost_model.base_s=0:0.05",
            "--set",
            "cost_model.base_s=0.03",
            "-q",
            "--max-evals",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(prof.read_text())["cost_model"]["base_s"] == pytest.approx(0.02, rel=0.05)
    r = runner.invoke(app, ["run", str(s), "--profile", str(prof), "--out", str(tmp_path / "run"), "-q", "--no-plots"])
    assert r.exit_code == 0, r.output
    bad = runner.invoke(
        app,
        [
            "calibrate",
            "fit-run",
            "--observed",
            str(obs),
            "--scenario",
            str(s),
            "--out",
            str(prof),
            "--param",
            "cost_model.base_s=0.05:0",
        ],
    )
    assert bad.exit_code == 2 and "lo < hi" in bad.output


def test_vllm_bench_json_replays_closed_loop_at_its_concurrency(tmp_path):
    """A bench log made by a known closed-loop engine validates with ~0 error when replayed on that engine."""
    sc = scenario(
        write_csv(tmp_path / "u.csv", [(0.0, 1, 1)]),
        cost={"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 1e-4, "per_decode_seq_s": 1e-3},
    )
    sc["workload"] = {
        "num_requests": 30,
        "arrival": {"kind": "closed_loop", "concurrency": 4},
        "lengths": {"kind": "lognormal", "prompt_median": 80, "output_median": 20},
    }
    df = sim.run(sc).requests
    out = df["output_tokens"].to_numpy()
    gaps = [[(e - t) / (o - 1)] * (o - 1) for t, e, o in zip(df["ttft_s"], df["e2el_s"], out, strict=True)]
    doc = {
        "date": "x",
        "max_concurrency": 4,
        "request_rate": "inf",
        "input_lens": df["prompt_tokens"].tolist(),
        "output_lens": out.tolist(),
        "ttfts": df["ttft_s"].tolist(),
        "itls": gaps,
        "errors": [""] * 30,
    }
    p = tmp_path / "bench.json"
    p.write_text(json.dumps(doc))
    run = read_observed(p)
    assert run.closed_loop and run.concurrency == 4
    rp = Replay(run, sim.load_scenario(sc))
    cmp = compare(run, rp.simulate(rp.scenario()))
    rp.close()
    for m in ("ttft", "tpot", "e2e"):
        assert abs(cmp[m]["mean"]["error_pct"]) < 1e-6, (m, cmp[m]["mean"])
    assert "itl" in cmp and abs(cmp["itl"]["mean"]["error_pct"]) < 0.5  # the simulated ITLs are binned (±0.12%)


def test_terms_the_runs_cannot_inform_are_not_fitted(tmp_path, gt):
    from calibrate.fit_run import informed

    obs, sc, _ = _truth(tmp_path)
    csv_run, jsonl_run = read_observed(obs), read_observed(gt)
    lin = sim.load_scenario(sc)
    tp1 = sim.load_scenario(sc, ["cost_model={kind: roofline}"])
    tp2 = sim.load_scenario(sc, ["cost_model={kind: roofline}", "cluster.tp=2"])
    assert not informed("serving_engine.scheduler_s", [(csv_run, lin)])  # linear ignores the engine terms
    assert not informed("serving_engine.nccl_latency_s", [(csv_run, tp1)])
    assert informed("serving_engine.nccl_latency_s", [(csv_run, tp1), (csv_run, tp2)])
    assert informed("serving_engine.allreduce_bw_scale", [(csv_run, tp2)])
    # a disaggregated run all-reduces inside its pools (the cluster's own tp stays 1)
    pools = ["cost_model={kind: roofline}", "cluster={prefill: {tp: 2}, decode: {tp: 1}}"]
    assert informed("serving_engine.allreduce_bw_scale", [(csv_run, sim.load_scenario(sc, pools))])
    pools1 = ["cost_model={kind: roofline}", "cluster={prefill: {tp: 1}, decode: {tp: 1}}"]
    assert not informed("serving_engine.allreduce_bw_scale", [(csv_run, sim.load_scenario(sc, pools1))])
    assert not informed("serving_engine.frontend_s", [(jsonl_run, tp1)])  # engine-side clock: no front end
    assert informed("serving_engine.frontend_s", [(csv_run, tp1)])
    assert informed("serving_engine.scheduler_s", [(jsonl_run, tp1)])

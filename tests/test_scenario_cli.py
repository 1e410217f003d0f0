"""Bad input gets one clear line (file:line:col, field, expected, found) and exit 2; the CLI works."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import sim
from sim.errors import ServesimError
from sim.tools.cli import app

runner = CliRunner()


def _err(tmp_path, text: str, overrides=None) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(ServesimError) as e:
        sim.load_scenario(p, overrides or [])
    return str(e.value)


BASE = """model: llama-3.1-8b
hardware: h100-sxm
workload:
  num_requests: 10
  arrival: {kind: poisson, rate: 1}
  lengths: {kind: fixed, prompt: 10, output: 10}
"""


def test_wrong_type_names_line_field_and_value(tmp_path):
    msg = _err(tmp_path, BASE + "cluster:\n  instances: many\n")
    assert msg.startswith(f"{tmp_path}/s.yaml:8:14: cluster.instances:")
    assert "'many'" in msg


def test_unknown_field(tmp_path):
    msg = _err(tmp_path, BASE + "cluster:\n  instance: 4\n")
    assert "s.yaml:8:13: cluster.instance: unknown field" in msg


def test_unknown_kind_lists_known(tmp_path):
    msg = _err(tmp_path, BASE + "scheduler: {kind: fifo}\n")
    assert "s.yaml:7:" in msg and "scheduler" in msg and "'fcfs'" in msg and "'sarathi'" in msg


def test_unknown_model_lists_known(tmp_path):
    msg = _err(tmp_path, BASE.replace("llama-3.1-8b", "llama-9"))
    assert "s.yaml:1:8: model:" in msg and "unknown model 'llama-9'" in msg and "llama-3.1-8b" in msg


def test_yaml_syntax_error(tmp_path):
    msg = _err(tmp_path, BASE + "cluster: [1, 2\n")
    assert msg.startswith(f"{tmp_path}/s.yaml:") and "invalid YAML" in msg


def test_override_error_and_override_value(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(BASE)
    assert sim.load_scenario(p, ["cluster.instances=3"]).cluster.instances == 3
    with pytest.raises(ServesimError, match=r"cluster\.instances"):
        sim.load_scenario(p, ["cluster.instances=-1"])
    with pytest.raises(ServesimError, match="KEY=VALUE"):
        sim.load_scenario(p, ["cluster.instances"])


def test_model_that_does_not_fit_is_a_clear_error(tmp_path):
    """A file is caught at load, named at the key that sets the group size; a dict (the planner's candidates)
    at run time."""
    sc = sim.load_scenario(
        {
            **sim.load_scenario("scenarios/quickstart.yaml").model_dump(mode="json"),
            "model": "llama-3.1-70b",
            "hardware": "l40s",
        }
    )
    with pytest.raises(ServesimError, match=r"does not fit on 1 x l40s.*short by \d+\.\d GB"):
        sim.run(sc)
    text = BASE.replace("llama-3.1-8b", "llama-3.1-70b").replace("h100-sxm", "l40s") + "cluster:\n  tp: 1\n"
    msg = _err(tmp_path, text)
    assert msg.startswith(f"{tmp_path}/s.yaml:8:7: cluster.tp: model llama-3.1-70b does not fit") and "\n" not in msg


def test_cli_run_writes_outputs_and_bad_input_exits_2(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(
        app, ["run", "scenarios/quickstart.yaml", "--out", str(out), "--set", "workload.num_requests=200", "-q"]
    )
    assert r.exit_code == 0, r.output
    for f in ("requests.parquet", "timeline.parquet", "summary.json", "plots/latency_cdfs.png", "plots/timeline.png"):
        assert (out / f).exists(), f
    s = json.loads((out / "summary.json").read_text())
    assert set(s) >= {"counts", "metrics", "throughput", "sim", "scenario", "seed", "version"}
    assert s["counts"]["completed"] == 200
    bad = runner.invoke(app, ["run", "scenarios/quickstart.yaml", "--set", "cluster.tp=zero", "-q"])
    assert bad.exit_code == 2
    assert "cluster.tp" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "file not found" in missing.output


def test_cli_estimate_json_and_list():
    r = runner.invoke(
        app,
        [
            "estimate",
            "--model",
            "llama-3.1-8b",
            "--hardware",
            "h100-sxm",
            "--batch-size",
            "8",
            "--context-tokens",
            "1000",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["iteration_s"] == pytest.approx(sum(d["breakdown"].values()))
    assert 0.003 < d["iteration_s"] < 0.03
    for what in ("models", "hardware", "policies", "traces"):
        assert runner.invoke(app, ["list", what]).exit_code == 0
    assert runner.invoke(app, ["list", "gpus"]).exit_code == 2
    bad = runner.invoke(app, ["estimate", "--model", "nope", "--hardware", "h100-sxm"])
    assert bad.exit_code == 2 and "unknown model" in bad.output


def test_schema_command(tmp_path):
    r = runner.invoke(app, ["schema", "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert "scheduler" in schema["properties"]

"""`calibrate fit-run` on a means CSV (one closed loop per line): the linearised fit of `calibrate.fit_means`,
checked on loops the simulator made at known engine terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from calibrate.replay import replay_once, scenario_data
from sim.tools.cli import app
from tests.closed_loops import closed_scenario, means_only

runner = CliRunner()
LOOPS = ((4, 512, 48), (16, 1024, 32), (8, 2048, 40), (32, 256, 24))


def _means_csv(tmp_path: Path, memory_scale: float) -> tuple[Path, Path]:
    """Each loop simulated with the memory system at `memory_scale` of the preset, written as a means CSV (3 x
    clients requests per loop), and the preset scenario (SGLang, Llama-3.1-8B, H100) to fit it on."""
    lines = ["clients,prompt_tokens,output_tokens,ttft_s,tpot_s,num_requests"]
    for c, isl, osl in LOOPS:
        truth = closed_scenario(c, isl, osl, {"kind": "sglang", "memory_efficiency_scale": memory_scale})
        simd = replay_once(means_only(c, isl, osl, 1.0, 0.01), truth)
        lines.append(f"{c},{isl},{osl},{float(np.nanmean(simd.ttft_s))!r},{float(np.nanmean(simd.tpot_s))!r},{3 * c}")
    csv = tmp_path / "means.csv"
    csv.write_text("\n".join(lines) + "\n")
    scen = tmp_path / "preset.yaml"
    scen.write_text(yaml.safe_dump(scenario_data(closed_scenario(4, 512, 48, {"kind": "sglang"}))))
    return csv, scen


def _fit(tmp_path: Path, scale: float) -> tuple[dict[str, Any], str]:
    """`calibrate fit-run` on loops simulated at memory scale `scale`: the profile written, and the output."""
    csv, scen = _means_csv(tmp_path, scale)
    prof = tmp_path / "p.yaml"
    r = runner.invoke(
        app, ["calibrate", "fit-run", "--observed", str(csv), "--scenario", str(scen), "--out", str(prof)]
    )
    assert r.exit_code == 0, r.output
    return yaml.safe_load(prof.read_text()), r.output


def test_fit_run_on_a_means_csv_recovers_the_memory_scale(tmp_path: Path) -> None:
    doc, output = _fit(tmp_path, 0.8)
    assert doc["serving_engine"]["memory_efficiency_scale"] == pytest.approx(0.8, rel=0.05)
    assert doc["fit_run"]["method"].startswith("linearised")
    assert doc["fit_run"]["identifiability"]["chosen"][0] == "serving_engine.memory_efficiency_scale"
    assert len(doc["fit_run"]["observed"]) == len(LOOPS) and doc["fit_run"]["kept_preset"] == []
    assert "freed: serving_engine.memory_efficiency_scale" in output


def test_fit_run_on_loops_the_preset_matches_keeps_the_preset(tmp_path: Path) -> None:
    doc, _ = _fit(tmp_path, 1.0)
    assert doc["serving_engine"]["memory_efficiency_scale"] == pytest.approx(1.0, abs=1e-9)
    assert doc["fit_run"]["kept_preset"] == ["no term chosen"]


def test_means_csv_bad_input_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    scen = tmp_path / "preset.yaml"
    scen.write_text(yaml.safe_dump(scenario_data(closed_scenario(4, 512, 48, {"kind": "sglang"}))))
    bad = tmp_path / "bad.csv"
    bad.write_text("clients,prompt_tokens,output_tokens,ttft_s,tpot_s\n4,512,48,0.1,0.01\n8,512,48,fast,0.01\n")
    prof = tmp_path / "p.yaml"
    args = ["calibrate", "fit-run", "--out", str(prof)]
    r = runner.invoke(app, [*args, "--observed", str(bad), "--scenario", str(scen)])
    assert r.exit_code == 2 and f"{bad}:3: column 'ttft_s': expected a number, found 'fast'" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, [*args, "--observed", str(bad)])
    assert r.exit_code == 2 and "give --scenario" in r.output
    per_request = tmp_path / "log.csv"
    per_request.write_text("arrival_s,prompt_tokens,output_tokens,ttft_s,e2e_s\n0,512,48,0.1,0.6\n")
    ok = tmp_path / "ok.csv"
    ok.write_text("clients,prompt_tokens,output_tokens,ttft_s,tpot_s\n4,512,48,0.1,0.01\n")
    r = runner.invoke(app, [*args, "--observed", str(ok), "--observed", str(per_request), "--scenario", str(scen)])
    assert r.exit_code == 2 and "fit them separately" in r.output

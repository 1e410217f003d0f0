"""`calibrate fit-run` on a means CSV (one closed loop per line): the linearised fit of `calibrate.fit_means`,
checked on loops the simulator made at known engine terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from calibrate.observed_means import is_means_csv, read_means_csv
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
    return csv, _preset(tmp_path)


def _preset(tmp_path: Path) -> Path:
    """The preset scenario the loops are fitted on (SGLang, Llama-3.1-8B, H100)."""
    scen = tmp_path / "preset.yaml"
    scen.write_text(yaml.safe_dump(scenario_data(closed_scenario(4, 512, 48, {"kind": "sglang"}))))
    return scen


def _run(tmp_path: Path, csv: Path, scen: Path, *extra: str) -> tuple[int, str, Path]:
    """`calibrate fit-run` on `csv`: exit code, output (words, as rich wraps at 80 columns), profile path."""
    prof = tmp_path / "p.yaml"
    r = runner.invoke(
        app, ["calibrate", "fit-run", "--observed", str(csv), "--scenario", str(scen), "--out", str(prof), *extra]
    )
    return r.exit_code, " ".join(r.output.split()), prof


def _fit(tmp_path: Path, scale: float) -> tuple[dict[str, Any], str]:
    """`calibrate fit-run` on loops simulated at memory scale `scale`: the profile written, and the output."""
    code, output, prof = _run(tmp_path, *_means_csv(tmp_path, scale))
    assert code == 0, output
    return yaml.safe_load(prof.read_text()), output


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
    scen = _preset(tmp_path)
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


def test_a_term_outside_its_bounds_is_not_fitted_and_the_profile_keeps_the_scenario_value(tmp_path: Path) -> None:
    """The reviewer's case: layer_overhead_s 200 us against bounds 0-100 us; clamping it into the profile (100 us)
    changed the user's model even where the fit kept the preset."""
    csv, scen = _means_csv(tmp_path, 1.0)
    code, output, prof = _run(tmp_path, csv, scen, "--set", "cost_model.layer_overhead_s=0.0002")
    assert code == 0, output
    assert "not fitted, scenario value outside its bounds: cost_model.layer_overhead_s=0.0002 (0..0.0001)" in output
    doc = yaml.safe_load(prof.read_text())
    assert doc.get("cost_model", {}).get("layer_overhead_s", 0.0002) == 0.0002
    assert "cost_model.layer_overhead_s" not in doc["fit_run"]["start"]
    assert doc["fit_run"]["identifiability"]["outside_bounds"] == ["cost_model.layer_overhead_s=0.0002 (0..0.0001)"]


def test_a_one_line_means_csv_is_refused(tmp_path: Path) -> None:
    """Leave-one-out needs two runs: one line used to keep the preset silently (exit 0, 'freed: none')."""
    csv, scen = _means_csv(tmp_path, 0.8)
    one = tmp_path / "one.csv"
    one.write_text("\n".join(csv.read_text().splitlines()[:2]) + "\n")
    for extra in ([], ["--param", "serving_engine.memory_efficiency_scale=0.5:1.5"]):
        code, output, _ = _run(tmp_path, one, scen, *extra)
        assert code == 2 and f"{one}: a means CSV needs at least 2 lines (leave-one-out chooses the terms)" in output
        assert "Traceback" not in output


def test_one_output_token_is_refused(tmp_path: Path) -> None:
    """TPOT, the time between output tokens, is undefined for one token."""
    scen = _preset(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("clients,prompt_tokens,output_tokens,ttft_s,tpot_s\n4,512,48,0.1,0.01\n8,512,1,0.1,0.01\n")
    code, output, _ = _run(tmp_path, bad, scen)
    assert code == 2 and f"{bad}:3: column 'output_tokens': expected an integer >= 2 (TPOT needs two tokens)" in output


def test_a_term_that_lands_on_its_bound_is_reported_as_preset_kept(tmp_path: Path) -> None:
    """Loops at 0.3 x the memory bandwidth, below the term's 0.5-1.5: the fit lands on 0.5 and puts the preset
    back, which the output must say (not 'at their bounds', which reads as a fitted value of 0.5)."""
    csv, scen = _means_csv(tmp_path, 0.3)
    code, output, prof = _run(tmp_path, csv, scen, "--param", "serving_engine.memory_efficiency_scale=0.5:1.5")
    assert code == 0, output
    assert "landed on a bound, preset kept: serving_engine.memory_efficiency_scale" in output
    assert "at their bounds" not in output
    assert yaml.safe_load(prof.read_text())["serving_engine"]["memory_efficiency_scale"] == 1.0


def test_a_means_csv_with_a_byte_order_mark_is_read_as_a_means_csv(tmp_path: Path) -> None:
    """A spreadsheet's UTF-8 BOM used to hide `clients`, so the file went to the per-request reader."""
    header = "clients,prompt_tokens,output_tokens,ttft_s,tpot_s\n"
    good = tmp_path / "good.csv"
    good.write_text("\ufeff" + header + "4,512,48,0.1,0.01\n8,1024,32,0.2,0.02\n", encoding="utf-8")
    assert is_means_csv(good)
    runs = read_means_csv(good)
    assert [r.concurrency for r in runs] == [4, 8] and [len(r) for r in runs] == [40, 80]
    bad = tmp_path / "bad.csv"
    bad.write_text("\ufeff" + header + "4,512,48,fast,0.01\n", encoding="utf-8")
    code, output, _ = _run(tmp_path, bad, _preset(tmp_path))
    assert code == 2 and f"{bad}:2: column 'ttft_s': expected a number, found 'fast'" in output

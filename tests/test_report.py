"""`servesim report`: one self-contained HTML page with the run's key numbers, plots and scenario."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import sim
from sim.errors import ServesimError
from sim.output.report import ms, render, write_report
from sim.tools.cli import app
from tests.helpers import scenario, write_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    tr = write_csv(d / "t.csv", [(0.02 * i, 30 + i % 11, 2 + i % 9) for i in range(80)] + [(2.0, 5000, 5)])
    sc = scenario(tr, instances=2, slo={"ttft_s": 0.05, "tpot_s": 0.02}, name="report-demo")
    res = sim.run(sc)
    res.save(d / "run")
    return d / "run", res


def _external_refs(page: str) -> list[str]:
    """Every src=/href= that is not an inline data: URI (or an in-page #anchor)."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.I)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def test_report_is_self_contained_with_key_numbers(run_dir):
    d, res = run_dir
    path = write_report(d)
    assert path == d / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert _external_refs(page) == []
    assert "@import" not in page and "url(" not in page  # no external CSS either
    assert page.count("data:image/png;base64,") >= 2
    s = res.summary
    assert "report-demo" in page
    assert f"{s['counts']['completed']} / {s['counts']['arrived']}" in page
    for key in ("ttft_s", "tpot_s", "e2el_s"):
        for stat in ("p50", "p99"):
            assert ms(s["metrics"][key][stat]) in page
    assert f"{s['throughput']['requests_per_s']:.2f}" in page
    assert f"{s['throughput']['slo_attainment']:.1%}" in page
    assert "exceeds_context" in page  # the rejected request is reported
    assert "kind: linear" in page and "per_decode_seq_s" in page  # the scenario YAML


def test_report_draws_plots_when_the_run_has_none(run_dir, tmp_path):
    d, _ = run_dir
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("summary.json", "requests.parquet", "timeline.parquet"):
        (bare / f).write_bytes((d / f).read_bytes())
    page = render(bare)
    assert page.count("data:image/png;base64,") == 2


def test_report_needs_only_summary_json(run_dir, tmp_path):
    d, _ = run_dir
    (tmp_path / "summary.json").write_bytes((d / "summary.json").read_bytes())
    page = render(tmp_path)
    assert "Latency (ms)" in page and "data:image" not in page


def test_cli_report(run_dir, tmp_path):
    d, _ = run_dir
    out = tmp_path / "share" / "page.html"
    r = runner.invoke(app, ["report", str(d), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists() and _external_refs(out.read_text()) == []
    assert runner.invoke(app, ["report", str(tmp_path / "missing")]).exit_code == 2
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "summary.json" in r.output


def test_bad_summary_is_a_user_error(tmp_path):
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ServesimError, match="not JSON"):
        render(tmp_path)


def test_disaggregated_report_names_both_pools_and_shows_cost_and_transfers(tmp_path):
    """2 × H100 prefill + 2 × A100 decode is written as such (not `1 × tp1 × h100-sxm`), with the cost per
    pool and the KV-transfer figures; a hostile scenario name is escaped by the template (jinja2 autoescape)."""
    tr = write_csv(tmp_path / "t.csv", [(0.05 * i, 200, 8) for i in range(20)])
    sc = {
        "name": "<img src=x onerror=alert(1)>",
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {"arrival": {"kind": "trace", "path": str(tr), "format": "csv"}},
        "cluster": {"prefill": {"instances": 2, "tp": 1}, "decode": {"instances": 2, "tp": 1, "hardware": "a100-80g"}},
    }
    sim.run(sc).save(tmp_path / "run", plots=False)
    page = render(tmp_path / "run")
    assert "2 × tp1 × h100-sxm (prefill) + 2 × tp1 × a100-80g (decode)" in page
    assert "<h2>Cost and power</h2>" in page and "$ per million output tokens" in page
    assert "<h2>KV transfer</h2>" in page and "transfers</td><td>20</td>" in page
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "No SLO set" in page

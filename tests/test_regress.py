"""`servesim regress`: tolerance parsing, comparison, exit codes, and the project's own checked-in baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from sim.errors import ServesimError
from sim.tools.cli import app
from sim.tools.regress import (
    REGENERATE,
    compare,
    find_scenarios,
    parse_tolerance,
    registered_kinds,
    regress,
    relative_change,
    table,
    uncovered_kinds,
    verdict,
)
from tests.helpers import scenario, write_csv

ROOT = Path(__file__).resolve().parent.parent
REGRESSION = ROOT / "scenarios" / "regression"
BASELINE = REGRESSION / "baseline.json"
runner = CliRunner()


def test_parse_tolerance():
    assert parse_tolerance("2%") == pytest.approx(0.02)
    assert parse_tolerance(" 0.5 % ") == pytest.approx(0.005)
    assert parse_tolerance("0.02") == pytest.approx(0.02)
    assert parse_tolerance("0") == 0.0
    for bad in ("abc", "-1%", "nan", "%"):
        with pytest.raises(ServesimError, match="--tolerance"):
            parse_tolerance(bad)


def test_relative_change():
    assert relative_change(2.0, 2.0) == 0.0
    assert relative_change(math.nan, math.nan) == 0.0
    assert relative_change(2.0, 2.1) == pytest.approx(0.05)
    assert relative_change(-2.0, -2.1) == pytest.approx(-0.05)
    assert math.isinf(relative_change(0.0, 1.0))
    assert math.isinf(relative_change(math.nan, 1.0))
    assert math.isinf(relative_change(1.0, math.nan))


def test_compare_marks_changes_beyond_tolerance():
    base = {"a": {"x": 1.0, "y": 10.0, "gone": 1.0}, "old": {"x": 1.0}}
    now = {"a": {"x": 1.0, "y": 10.1, "z": 5.0}, "b": {"x": 1.0}}
    rep = compare(base, now, 0.02)
    rows = {(r.scenario, r.metric): r for r in rep.rows}
    assert ("a", "x") not in rows  # equal: no row
    assert not rows["a", "y"].failed and rows["a", "y"].change == pytest.approx(0.01)
    assert rows["a", "z"].failed and rows["a", "z"].baseline is None  # a new metric
    assert rows["a", "gone"].failed and rows["a", "gone"].now is None  # a metric no longer produced
    assert rows["b", "(no baseline)"].failed
    assert rep.not_run == ["old"]
    assert compare(base, now, 0.005).rows[0].failed  # y's 1% is beyond 0.5%
    text = _render(table(rep)) + verdict(rep)
    assert "FAIL" in text and "within" in text and "in the baseline but not run: old" in text


def _render(t) -> str:
    c = Console(width=200, record=True)
    c.print(t)
    return c.export_text()


@pytest.fixture
def tiny_set(tmp_path):
    """Two tiny linear-cost scenarios (fast) in a directory, as a user's regression set would be."""
    tr = write_csv(tmp_path / "t.csv", [(0.01 * i, 20 + i % 7, 3 + i % 5) for i in range(40)])
    d = tmp_path / "set"
    d.mkdir()
    (d / "one.yaml").write_text(yaml.safe_dump(scenario(tr, slo={"ttft_s": 0.1})))
    (d / "two.yaml").write_text(
        yaml.safe_dump(scenario(tr, scheduler={"kind": "sarathi", "token_budget": 32}, instances=2))
    )
    return d


def _invoke(*args: str):
    return runner.invoke(app, ["regress", *args])


def test_cli_update_then_pass_then_fail(tiny_set, tmp_path):
    b = tmp_path / "baseline.json"
    r = _invoke(str(tiny_set), "--baseline", str(b))
    assert r.exit_code == 2 and "create it with --update" in r.output
    r = _invoke(str(tiny_set), "--baseline", str(b), "--update")
    assert r.exit_code == 0, r.output
    data = json.loads(b.read_text())
    assert sorted(data["scenarios"]) == ["one", "two"]
    assert data["scenarios"]["one"]["metrics"]["completed"] == 40
    assert data["regenerate"].endswith("--update")
    r = _invoke(str(tiny_set), "--baseline", str(b))
    assert r.exit_code == 0, r.output
    assert "match the baseline" in r.output
    # a 5% drift in one metric fails at 2%, passes at 10%
    data["scenarios"]["two"]["metrics"]["ttft_s.p99"] *= 1.05
    b.write_text(json.dumps(data))
    r = _invoke(str(tiny_set), "--baseline", str(b))
    assert r.exit_code == 1
    assert "ttft_s.p99" in r.output and "FAIL" in r.output and "-4.762%" in r.output
    assert _invoke(str(tiny_set), "--baseline", str(b), "--tolerance", "10%").exit_code == 0
    # --update on one file keeps the other scenario's entry and rewrites the drifted one
    r = _invoke(str(tiny_set / "two.yaml"), "--baseline", str(b), "--update")
    assert r.exit_code == 0 and "updated" in r.output
    assert _invoke(str(tiny_set), "--baseline", str(b)).exit_code == 0


def test_cli_all_lists_every_metric(tiny_set, tmp_path):
    b = tmp_path / "baseline.json"
    regress([tiny_set], b, update=True)
    r = _invoke(str(tiny_set / "one.yaml"), "--baseline", str(b), "--all")
    assert r.exit_code == 0
    for m in ("ttft_s.mean", "tpot_s.p99", "itl_s.p50", "e2el_s.p99", "goodput_rps", "slo_attainment", "preemptions"):
        assert m in r.output


def test_cli_user_errors_exit_2(tiny_set, tmp_path):
    b = tmp_path / "baseline.json"
    regress([tiny_set], b, update=True)
    assert _invoke(str(tmp_path / "nope"), "--baseline", str(b)).exit_code == 2
    assert _invoke(str(tiny_set), "--baseline", str(b), "--tolerance", "lots").exit_code == 2
    (tmp_path / "junk.json").write_text("[1, 2]")
    r = _invoke(str(tiny_set), "--baseline", str(tmp_path / "junk.json"))
    assert r.exit_code == 2 and "not a servesim regress baseline" in r.output
    bad = tiny_set / "bad.yaml"
    bad.write_text("model: llama-3.1-8b\nhardware: h100-sxm\nworkload: {num_requests: many}\n")
    r = _invoke(str(tiny_set), "--baseline", str(b))
    assert r.exit_code == 2 and "bad.yaml" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _invoke(str(empty), "--baseline", str(b)).exit_code == 2


def test_scenario_names_must_be_unique(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.yaml").write_text("name: x\n")
    with pytest.raises(ServesimError, match="share the name 'same'"):
        find_scenarios([tmp_path / "a", tmp_path / "b"])


def test_checked_in_baseline_matches():
    """The project's regression set reproduces its baseline. Deterministic seeds make it exact; the tiny
    tolerance absorbs last-digit float differences between platforms. After a deliberate model change,
    regenerate it (and review the table it prints):

        servesim regress scenarios/regression --baseline scenarios/regression/baseline.json --update
    """
    rep, _ = regress([REGRESSION], BASELINE, tolerance=1e-6)
    if rep.failed:
        pytest.fail(f"regression baseline drifted; if deliberate run `{REGENERATE}`\n" + _render(table(rep)))
    assert not rep.not_run, f"baseline entries without a scenario file: {rep.not_run}"


def test_every_regression_scenario_is_small():
    for f in find_scenarios([REGRESSION]):
        data = yaml.safe_load(f.read_text())
        assert data["name"] == f.stem, f"{f.name}: name should match the file name"
        assert data["workload"]["num_requests"] <= 1000, f"{f.name}: keep regression scenarios ~1 s"


@pytest.mark.parametrize(
    ("family", "kind"),
    [(f, k) for f in ("scheduler", "router") for k in registered_kinds(f)],
)
def test_registered_kind_has_a_regression_scenario(family, kind):
    """Soft check: a newly registered policy should get a scenario in scenarios/regression (xfail until then)."""
    if kind in uncovered_kinds([REGRESSION], family):
        pytest.xfail(
            f"no regression scenario uses {family} kind {kind!r}: add scenarios/regression/<name>.yaml "
            f"(copy a neighbour, change the {family}) and run `{REGENERATE}`"
        )

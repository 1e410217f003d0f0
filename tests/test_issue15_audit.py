"""Issue 15 items that had no test of their own: piped sweep tables are complete CSV rows, the benchmark
script's --help, the [dev] extra carrying what `jupyter nbconvert --execute` needs, and `plan --capacity`
stating its criterion in --help and the README."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import typer
import yaml

from sim.tools.cli import app, run_cli

REPO = Path(__file__).resolve().parents[1]


def test_piped_sweep_table_is_complete_csv_rows(tmp_path: Path, monkeypatch) -> None:
    """`servesim sweep ... | cat`: one CSV row per point, every cell whole (no number split over lines)."""
    base = {
        "name": "sw",
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {
            "num_requests": 30,
            "arrival": {"kind": "poisson", "rate": 4.0},
            "lengths": {"kind": "fixed", "prompt": 64, "output": 8},
        },
        "slo": {"ttft_s": 1.0},
    }
    (tmp_path / "w.yaml").write_text(yaml.safe_dump({"base": base, "grid": {"cluster.instances": [1, 2]}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal would have wrapped the cells
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = run_cli(["sweep", "w.yaml", "--out", "o", "--workers", "1", "-q"])
    assert rc == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("# sweep w: 2 runs") and lines[-1].startswith("# simulated 2, cached 0, failed 0")
    rows = list(csv.reader(lines[1:-1]))
    assert len(rows) == 3, out.getvalue()  # header + one row per point, nothing wrapped
    assert all(len(r) == len(rows[0]) for r in rows)
    assert [r[rows[0].index("cluster.instances")] for r in rows[1:]] == ["1", "2"]
    for name in ("TTFT p50 s", "TTFT p99 s", "req/s"):
        assert all(float(r[rows[0].index(name)]) > 0 for r in rows[1:])
    assert "…" not in out.getvalue()


def test_benchmark_script_help_runs() -> None:
    """`python benchmarks/core.py --help` was a KeyError."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(
        [sys.executable, "benchmarks/core.py", "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "usage:" in p.stdout and "Traceback" not in p.stderr


def test_dev_extra_can_execute_the_notebooks() -> None:
    """`pip install -e .[dev]` then `jupyter nbconvert --execute` needs nbconvert and a kernel."""
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in dev}
    assert {"nbconvert", "ipykernel", "nbmake"} <= names


def test_plan_capacity_states_its_criterion() -> None:
    plan = typer.main.get_command(app).commands["plan"]  # type: ignore[attr-defined]  # a click Group here
    (opt,) = [p for p in plan.params if "--capacity" in getattr(p, "opts", [])]
    assert "median queueing delay <= 2 s" in " ".join(str(opt.help).split())
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "`--capacity`" in readme and "median queueing delay ≤ 2 s" in readme

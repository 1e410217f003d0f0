"""The README's Python snippets run as written (on a 200-request copy of the quickstart scenario, so the
test takes seconds): the API they show exists and returns what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _snippets() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow  # ~50 s on a loaded 2-core box (process pool start-up); the API is covered fast below
def test_readme_python_snippets_run(tmp_path: Path, monkeypatch) -> None:
    snippets = _snippets()
    assert len(snippets) >= 2
    small = yaml.safe_load((REPO / "scenarios/quickstart.yaml").read_text())
    small["workload"]["num_requests"] = 200
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/quickstart.yaml").write_text(yaml.safe_dump(small))
    monkeypatch.chdir(tmp_path)  # relative paths in the snippets resolve here; outputs land here
    ns: dict = {}
    for code in snippets:
        exec(compile(code, "README.md", "exec"), ns)
    sw = ns["sw"]
    assert {"workload.arrival.rate", "ttft_p99_s", "goodput_rps", "status"} <= set(sw.columns)
    assert len(sw) == 2 and (sw["status"] == "ok").all()
    assert sw.path.exists() and (tmp_path / "runs/mine/summary.json").exists()


def test_readme_sweep_snippet_api_fast(tmp_path: Path, monkeypatch) -> None:
    """The names the README's sweep snippet uses, on a serial 2-point sweep."""
    from sim.tools.sweep.api import run_sweep

    small = yaml.safe_load((REPO / "scenarios/quickstart.yaml").read_text())
    small["workload"]["num_requests"] = 50
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(small))
    monkeypatch.chdir(tmp_path)
    sw = run_sweep({"base": "q.yaml", "grid": {"workload.arrival.rate": [8, 16]}}, "runs/sweeps/mine", workers=1)
    assert {"workload.arrival.rate", "ttft_p99_s", "goodput_rps"} <= set(sw.columns)
    assert list(sw[["workload.arrival.rate", "ttft_p99_s"]].columns) == ["workload.arrival.rate", "ttft_p99_s"]
    assert (sw.simulated, sw.cached, len(sw)) == (2, 0, 2) and sw.path.exists()

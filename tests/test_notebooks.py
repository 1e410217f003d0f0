"""The notebooks run top to bottom on a fresh kernel (nbmake), shrunk by SERVESIM_SMOKE=1.

Each notebook is its own test (so `pytest -n` spreads them over workers) and runs in a subprocess, so a
kernel starts clean and the notebook finds the repository from its own directory, as a user's would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"what_if.ipynb", "capacity.ipynb", "queueing.ipynb"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook: Path):
    pytest.importorskip("nbmake")
    pytest.importorskip("ipykernel")
    env = {
        **os.environ,
        "SERVESIM_SMOKE": "1",
        "MPLBACKEND": "Agg",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    cmd = [
        sys.executable, "-m", "pytest", "--nbmake", "--nbmake-timeout=600", "-q", "-p", "no:cacheprovider",
        "-o", "addopts=", str(notebook),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{notebook.name} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"

"""Start-up stays light: the CLI module must not import the heavy libraries (a property, not a timing).

`servesim --help` and `servesim list` run in well under a second only because pandas, matplotlib, pyarrow,
torch, dask and scipy load on first use; a top-level import of any of them anywhere on the CLI's import path
would cost seconds on every command. Each check runs in a fresh interpreter, so earlier tests' imports do not
hide a regression.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "matplotlib", "pyarrow", "torch", "dask", "scipy")


def _modules_after(code: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return set(json.loads(p.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import sim.tools.cli",
        "import sim, sim.errors, hwprofiles.errors",
        # `--help` builds every command's help text; `list policies` loads every registered policy
        "import sim.tools.cli as c, contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
        "    c.app(['--help'], standalone_mode=False)",
    ],
)
def test_cli_path_imports_no_heavy_library(code: str) -> None:
    loaded = _modules_after(code) & set(HEAVY)
    assert not loaded, f"{code!r} imported {sorted(loaded)}"


def test_errors_module_stays_free_of_pydantic() -> None:
    """`hwprofiles.errors` is imported by every layer; it must not load the catalogue (pydantic, YAML)."""
    assert not _modules_after("import hwprofiles.errors") & {"pydantic", "yaml", "numpy"}


def test_probe_sees_heavy_imports() -> None:
    """The probe itself works: importing pandas is seen (so the checks above can fail)."""
    assert "pandas" in _modules_after("import pandas")

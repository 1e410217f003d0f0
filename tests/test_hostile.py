"""Hostile input: every mistake in the corpus (tests/hostile_corpus.py) gives exactly one line on stderr
that names file:line:col (or file:line for a trace cell, or the option), exit status 2, within seconds,
with nothing written. Runs in-process through the same entry point as the `servesim` script (run_cli);
a sample runs as real subprocesses."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from sim.tools.cli import run_cli
from tests.hostile_corpus import Case, all_cases

CASES = all_cases()
CASE_TIMEOUT_S = 30.0  # a hang guard, not a speed measurement: wall clock on a loaded 2-core machine
REPO = Path(__file__).resolve().parents[1]


@contextmanager
def _deadline(seconds: float):
    def boom(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            p.write_bytes(body)
        else:
            p.write_text(body, encoding="utf-8")


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check(case: Case, rc: int, out: str, err: str, before: set[str], after: set[str]) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"{case.name}: exit {rc}, stderr {err!r}, stdout {out[-300:]!r}"
    assert len(lines) == 1, f"{case.name}: {len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in err and "Traceback" not in out
    assert re.search(case.expect, lines[0]), f"{case.name}: {lines[0]!r} does not match {case.expect!r}"
    assert after == before, f"{case.name}: wrote {sorted(after - before)}"


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Pay the one-off imports (the simulator, matplotlib, the click command) before any case is timed."""
    import sim
    from sim.tools.entry import _command

    _command()
    sim.load_scenario(REPO / "scenarios/quickstart.yaml")


def test_corpus_is_hundreds_of_distinct_cases() -> None:
    names = [c.name for c in CASES]
    assert len(names) >= 300
    assert len(set(names)) == len(names), [n for n in names if names.count(n) > 1][:5]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mistake_is_one_line_exit_2_nothing_written(case: Case, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, case.files)
    before = _tree(tmp_path)
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e), _deadline(CASE_TIMEOUT_S):  # a hang fails, it does not stall CI
        rc = run_cli(case.argv)
    _check(case, rc, o.getvalue(), e.getvalue(), before, _tree(tmp_path))


SAMPLE = ["bomb-9x9", "trace-gz-bad-cell", "est--prefill-tokens-1e17"]


@pytest.mark.parametrize("name", SAMPLE)
def test_sample_as_a_real_process(name: str, tmp_path: Path) -> None:
    """The installed entry point (python -m sim.tools.cli): same one line, exit 2, nothing written."""
    case = next(c for c in CASES if c.name == name)
    _write(tmp_path, case.files)
    before = _tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    p = subprocess.run(
        [sys.executable, "-m", "sim.tools.cli", *case.argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,  # a hang guard (interpreter start and imports included), not a speed measurement
    )
    _check(case, p.returncode, p.stdout, p.stderr, before, _tree(tmp_path))

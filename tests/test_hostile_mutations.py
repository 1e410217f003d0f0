"""The second hostile-input corpus (tests/hostile_mutations.py: every shipped scenario, sweep and trace broken
one value at a time): each mistake gives one line naming the mutated value's file:line:col (a trace row's
file:line), exit status 2, within seconds, nothing written. Same checks as tests/test_hostile.py."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from sim.tools.cli import run_cli
from tests.hostile_mutations import NOT_MISTAKES, all_mutations, shipped_scenarios, shipped_sweeps
from tests.test_hostile import CASE_TIMEOUT_S, _check, _deadline, _tree, _write
from tests.test_hostile import _warm as _warm  # the autouse fixture: imports paid before any case is timed

CASES = all_mutations()


def test_every_shipped_file_is_mutated_and_the_corpus_is_hundreds() -> None:
    names = [c.name for c in CASES]
    assert len(names) >= 500
    assert len(set(names)) == len(names), sorted({n for n in names if names.count(n) > 1})[:5]
    assert {c.name.split("-", 1)[0] for c in CASES} == {"mut", "mutsweep", "muttrace"}
    for f in [*shipped_scenarios(), *shipped_sweeps()]:
        assert f.read_text(encoding="utf-8").strip(), f
    assert len(shipped_scenarios()) >= 20 and len(shipped_sweeps()) >= 2
    assert all(reason for reason in NOT_MISTAKES.values())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_mutation_is_one_line_at_the_value_exit_2_nothing_written(case, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, case.files)
    before = _tree(tmp_path)
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e), _deadline(CASE_TIMEOUT_S):  # a hang fails, it does not stall CI
        rc = run_cli(case.argv)
    _check(case, rc, o.getvalue(), e.getvalue(), before, _tree(tmp_path))

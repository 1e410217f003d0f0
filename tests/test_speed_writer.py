"""benchmarks/core.py rewrites the head of benchmarks/SPEED.md (table, verdicts, notes) and keeps the sessions'
sections appended after the notes: a `--cases` rerun once dropped them all."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _core() -> Any:  # the benchmark script, loaded from its file (not a package module)
    spec = importlib.util.spec_from_file_location("speed_core_bench", BENCH / "core.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rewriting_the_head_keeps_the_appended_sections(tmp_path: Path) -> None:
    core = _core()
    core.ROOT = tmp_path
    (tmp_path / "benchmarks").mkdir()
    path = tmp_path / "benchmarks" / "SPEED.md"
    tail = "\n## A session (branch x)\n\nIts measurements.\n"
    path.write_text("# Speed\n\nan old head\n\n" + "\n".join(core.NOTES) + "\n" + tail)
    core.write_speed([{"case": "bare-simpy", "requests": 1_000_000, "cpu_s": 1.25, "events": 1_000_000}], None)
    text = path.read_text()
    assert text.endswith("\n".join(core.NOTES) + "\n" + tail)
    assert "an old head" not in text and "| bare-simpy | 1000000 |" in text
    assert text.count(core.NOTES[0]) == 1

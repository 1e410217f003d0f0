"""benchmarks/core.py writes its tables to benchmarks/results/speed_tables.md and never touches SPEED.md, whose
sessions' sections a `--cases` rerun once dropped (SPEED.md is written by hand from those tables)."""

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


def test_the_tables_go_to_results_and_speed_md_is_kept(tmp_path: Path) -> None:
    core = _core()
    core.ROOT = tmp_path
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    doc = tmp_path / "benchmarks" / "SPEED.md"
    doc.write_text("# Speed\n\nthe hand-written document\n")
    core.write_speed([{"case": "bare-simpy", "requests": 1_000_000, "cpu_s": 1.25, "events": 1_000_000}], None)
    assert doc.read_text() == "# Speed\n\nthe hand-written document\n"
    text = (tmp_path / "benchmarks" / "results" / "speed_tables.md").read_text()
    assert "| bare-simpy | 1000000 |" in text and text.count(core.NOTES[0]) == 1

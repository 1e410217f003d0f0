"""The planner's output when piped (issue 15): the ranked table is complete CSV whose configuration names are
never cut (`sarathi/512` and `sarathi/2048` stay apart however narrow COLUMNS is), and the log lines around it
are not folded mid-path."""

from __future__ import annotations

import csv
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from sim.tools.cli import run_cli


def test_piped_ranked_table_keeps_whole_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal: a Rich table would have cut `sarathi/…`
    out_dir = "a-long-output-directory-name-that-is-wider-than-forty-columns"
    argv = ["plan", "--model", "llama-3.1-8b", "--rate", "2", "--lengths", "fixed:200,20", "--hardware", "h100-sxm"]
    argv += ["--tp", "1", "--shapes", "colocated", "--schedulers", "sarathi:512,sarathi:2048", "--requests", "60"]
    argv += ["--replications", "1", "--budget", "2", "--slo", "ttft_p99=2", "--out", out_dir]
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e):
        rc = run_cli(argv)
    assert rc == 0, e.getvalue()
    text = o.getvalue()
    lines = text.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("#,configuration,"))
    assert lines[head - 1].startswith("# cheapest configurations meeting ttft_p99")
    body = []
    for ln in lines[head + 1 :]:
        if ln.startswith("# "):
            break
        body.append(ln)
    rows = list(csv.reader([lines[head], *body]))
    assert all(len(r) == len(rows[0]) for r in rows)
    names = {r[1] for r in rows[1:]}
    # both scheduler settings fit 1 instance at 2 req/s with a 2 s TTFT limit: each is ranked, named in full
    assert names == {"h100-sxm tp1 sarathi/512 b256 × 1 inst", "h100-sxm tp1 sarathi/2048 b256 × 1 inst"}
    assert "…" not in text
    wrote = next(ln for ln in lines if ln.startswith("wrote "))
    assert f"{out_dir}/plan.json" in wrote  # the path list is one line, no path folded over two

"""Printing tables so nothing is cut: complete CSV rows when stdout is not a terminal (pipes, files, grep),
and on a terminal a table as wide as its content needs (the terminal may wrap a long line; Rich never
truncates a name to `llama-3.…` nor splits a number over lines).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

MAX_WIDTH = 400  # beyond this a terminal table is wider than any screen; wrap instead


def plain(cell: Any) -> str:
    """The text of a cell (markup such as `[bold]` removed)."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except Exception:  # not valid markup: the text as written
            return cell
    return str(cell)


def table_rows(t: Table) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a Rich table as plain strings."""
    header = [plain(c.header) for c in t.columns]
    cells = [[plain(x) for x in c._cells] for c in t.columns]
    return header, [list(r) for r in zip(*cells, strict=True)] if cells else []


def to_csv(t: Table) -> str:
    """CSV of a table: title and caption as `# ` comment lines, then the header and every row, complete."""
    buf = io.StringIO()
    if t.title:
        buf.write(f"# {plain(t.title)}\n")
    header, rows = table_rows(t)
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    if t.caption:
        buf.write(f"# {plain(t.caption)}\n")
    return buf.getvalue()


def show(console: Console, t: Table) -> None:
    """Print a table without truncation: CSV when not a terminal, else at the width its content needs."""
    if not console.is_terminal:
        console.file.write(to_csv(t))
        console.file.flush()
        return
    for c in t.columns:
        c.overflow = "fold"
        c.no_wrap = True
    need = Measurement.get(console, console.options.update_width(MAX_WIDTH), t).maximum
    old = console._width  # Console.print(width=) never exceeds the console's width: widen it for this table
    console.width = min(max(console.width, need), MAX_WIDTH)
    try:
        console.print(t, crop=False)
    finally:
        console._width = old


def safe(text: Any) -> str:
    """User text (names, paths, messages) made safe to print through Rich markup."""
    return escape(str(text))

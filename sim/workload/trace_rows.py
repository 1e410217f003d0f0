"""A cheap pass over a CSV trace before pandas reads it: pandas spends minutes tokenising a row of millions of
fields (a damaged or concatenated file), so such a row is named by its line first."""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

MAX_FIELDS = 1024  # per CSV row; the formats servesim reads have at most a dozen columns


def wide_row(path: Path) -> tuple[int, int] | None:
    """(line, fields) of the first row with at least MAX_FIELDS fields: commas counted first (cheap), and a line
    with that many re-read as CSV, so commas inside a quoted text column do not count."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if line.count(b",") >= MAX_FIELDS:
                    fields = len(next(csv.reader([line.decode("utf-8", "replace")]), []))
                    if fields >= MAX_FIELDS:
                        return n, fields
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return None  # pandas reports the damage
    return None

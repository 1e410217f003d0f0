"""A cheap pass over a CSV trace before pandas reads it: pandas spends minutes tokenising a row of millions of
fields (a damaged or concatenated file), so such a row is named by its line first."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

MAX_FIELDS = 1024  # per CSV row; the formats servesim reads have at most a dozen columns


def wide_row(path: Path) -> tuple[int, int] | None:
    """(line, fields) of the first row with at least MAX_FIELDS fields, found by counting commas."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as f:
            for n, line in enumerate(f, 1):
                commas = line.count(b",")
                if commas >= MAX_FIELDS:
                    return n, commas + 1
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return None  # pandas reports the damage
    return None

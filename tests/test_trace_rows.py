"""The pre-pass that names a CSV row of too many fields before pandas tokenises it."""

from __future__ import annotations

import gzip
from pathlib import Path

from sim.workload.trace_rows import MAX_FIELDS, wide_row


def test_quoted_commas_are_one_field(tmp_path: Path) -> None:
    # a text column full of commas is one CSV field: the row has 4 fields, not 1,503
    text = '"' + "," * 1500 + '"'
    p = tmp_path / "t.csv"
    p.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens,text\n0,5,5,{text}\n")
    assert wide_row(p) is None


def test_a_row_of_too_many_fields_is_named_by_its_line(tmp_path: Path) -> None:
    p = tmp_path / "t.csv.gz"
    body = "TIMESTAMP,ContextTokens,GeneratedTokens\n0,5,5\n" + ",".join(["1"] * (MAX_FIELDS + 5)) + "\n"
    p.write_bytes(gzip.compress(body.encode()))
    assert wide_row(p) == (3, MAX_FIELDS + 5)

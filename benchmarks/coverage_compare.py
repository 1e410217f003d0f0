"""Before / after of two `coverage.py --json` runs on the rows both simulated, per group (median |error|).

    python benchmarks/coverage_compare.py before.json after.json --md /tmp/compare.md

Rows are matched by id, so a group's numbers compare the same rows; rows present in one run only are counted
apart (a changed sample would show there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

GROUPS = ("mode", "backend", "gpu", "source")


def per_row(path: Path) -> list[dict[str, Any]]:
    """The simulated rows of a results file: `coverage.py --json`'s `errors.per_row`, or a bare list of rows as
    `tpot_groups.py --json` writes it."""
    data = json.loads(Path(path).read_text())
    return list(data["errors"]["per_row"] if isinstance(data, dict) else data)


def rows(path: Path) -> pd.DataFrame:
    return pd.DataFrame(per_row(path)).set_index("id")


def compare(before: pd.DataFrame, after: pd.DataFrame) -> str:
    common = before.index.intersection(after.index)
    b, a = before.loc[common], after.loc[common]
    only_b, only_a = len(before) - len(common), len(after) - len(common)
    lines = [
        f"{len(common)} rows in both runs ({only_b} only before, {only_a} only after).",
        "",
        "| | rows | TTFT before | TTFT after | TPOT before | TPOT after | signed TTFT before | signed TTFT after |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def line(name: str, idx: pd.Index) -> str:
        bb, aa = b.loc[idx], a.loc[idx]
        return (
            f"| {name} | {len(idx)} | {bb['ttft_err'].abs().median():.1%} | {aa['ttft_err'].abs().median():.1%} | "
            f"{bb['tpot_err'].abs().median():.1%} | {aa['tpot_err'].abs().median():.1%} | "
            f"{bb['ttft_err'].median():+.1%} | {aa['ttft_err'].median():+.1%} |"
        )

    lines.append(line("all", common))
    for g in GROUPS:
        for key, idx in b.groupby(g).groups.items():
            lines.append(line(f"{g} = {key}", idx))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    text = compare(rows(args.before), rows(args.after))
    print(text)
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()

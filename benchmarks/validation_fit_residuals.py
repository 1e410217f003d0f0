"""Where the silicon cross-fit's error sits: its held-out rows' residuals against the rows' features and the fit's
outcome, beside the fitted rows' own residuals.

    python benchmarks/validation_fit_residuals.py CROSS_FIT_JSON [--json OUT]

A fit whose terms describe the rows leaves the fitted rows near 0 and the held-out rows near the fitted ones; a fit
that does not carry leaves the held-out rows worse than the fitted ones; a fit that cannot describe the rows leaves
both alike and large. Tables (median |error| of TPOT, %, and the signed median): fitted (in sample) vs held out;
held-out rows by the fit's outcome (a fit used, the preset kept and why); by where a held-out row's clients lie
against the fitted rows of its own (isl, osl) (`inside` their range, `above`, `below`, or `no shape`: no fitted row
of that shape); by clients; and the held-out rows of subgroups where another reading was refused, by the refusal.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

BUCKETS = (4, 8, 16, 32, 64, 128)  # upper edges of the clients buckets


def _shape(rid: str) -> tuple[str, int] | None:
    """(isl x osl, clients) from a silicon row id (`..._1024x1024_c64_...`); None where the id does not say."""
    m = re.search(r"_(\d+x\d+)_c(\d+)_", rid)
    return (m.group(1), int(m.group(2))) if m else None


def _outcome(g: dict[str, Any]) -> str:
    if not g["kept_preset"]:
        return "fit used" + (" (reading)" if g.get("reading") else "")
    return "preset kept: " + ", ".join(g["kept_preset"])


def rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per replayed row of every fitted subgroup: role, features, signed TPOT / E2E error before and
    after the fit, the subgroup's outcome."""
    out = []
    for name, g in res["subgroups"].items():
        if "fitted" not in g:
            continue
        fitted_shapes = [s for s in map(_shape, g["fit_ids"]) if s]
        rej = g.get("reading_rejected") or {}
        common = {"subgroup": name, "outcome": _outcome(g), "reading_refused": ", ".join(rej.get("kept_preset", []))}
        pairs = zip(g["fit_ids"], g["in_sample"]["before"], g["in_sample"]["after"], strict=True)
        for rid, pre, post in pairs:
            out.append({**common, "role": "fitted", "id": rid, "pre": pre, "post": post, "position": "fitted"})
        for rid, pre, post in zip(g["report_ids"], g["presets"], g["fitted"], strict=True):
            shape = _shape(rid)
            same = [c for s, c in fitted_shapes if shape and s == shape[0]]
            pos = "no shape" if not shape or not same else "inside"
            if same and shape and shape[1] > max(same):
                pos = "above"
            elif same and shape and shape[1] < min(same):
                pos = "below"
            rec = {**common, "role": "held out", "id": rid, "pre": pre, "post": post, "position": pos}
            out.append(rec | {"clients": shape[1] if shape else None})
    return out


def _cell(recs: list[dict[str, Any]], m: str = "tpot") -> str:
    pre = [r["pre"][m] for r in recs]
    post = [r["post"][m] for r in recs]
    med = statistics.median
    return (
        f"{len(recs)} | {med(abs(x) for x in pre):.1f} | {med(abs(x) for x in post):.1f} | {med(post):+.1f}"
        if recs
        else "0 | - | - | -"
    )


def table(title: str, groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    head = f"| {title} | rows | presets \\|TPOT\\| | fit \\|TPOT\\| | fit signed TPOT |"
    return [head, "|---|---|---|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in groups.items()), ""]


def by(recs: list[dict[str, Any]], key: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        out.setdefault(key(r), []).append(r)
    return dict(sorted(out.items()))


def bucket(c: int | None) -> str:
    if c is None:
        return "unknown"
    hi = next((b for b in BUCKETS if c <= b), None)
    return f"<= {hi:>3}" if hi else f"> {BUCKETS[-1]}"


def report(res: dict[str, Any]) -> list[str]:
    recs = rows(res)
    held = [r for r in recs if r["role"] == "held out"]
    lines = table("rows", by(recs, lambda r: r["role"]))
    lines += table("held out, by the fit's outcome", by(held, lambda r: r["outcome"]))
    lines += table("held out, clients against the fitted rows' range", by(held, lambda r: r["position"]))
    lines += table("held out, clients", by(held, lambda r: bucket(r["clients"])))
    refused = [r for r in held if r["reading_refused"]]
    lines += table("held out where a reading was refused, why", by(refused, lambda r: r["reading_refused"]))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cross_fit", type=Path)
    ap.add_argument("--json", type=Path, help="write the per-row records here")
    args = ap.parse_args()
    try:
        res = json.loads(args.cross_fit.read_text())["silicon_cross_fit"]
    except (OSError, ValueError, KeyError) as e:
        print(f"{args.cross_fit}: not a --silicon-cross-fit results file ({e})", file=sys.stderr)
        sys.exit(2)
    print("\n".join(report(res)))
    if args.json:
        args.json.write_text(json.dumps(rows(res), indent=1) + "\n")


if __name__ == "__main__":
    main()

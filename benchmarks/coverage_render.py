"""COVERAGE.md's generated tables from coverage.py's results (kept apart to keep coverage.py short)."""

from __future__ import annotations

from typing import Any


def render(out: dict[str, Any]) -> str:
    """The numbers as markdown tables (COVERAGE.md's generated section)."""
    lines = [
        f"Expressible: **{out['expressible']} / {out['rows']}** rows "
        f"({out['expressible'] / out['rows']:.1%}); load protocol `{out['protocol']}`.",
        "",
    ]
    for k, shares in out["by"].items():
        lines += [f"| {k} | expressible |", "|---|---|"] + [f"| {a} | {b} |" for a, b in shares.items()] + [""]
    if out["reasons"]:
        lines += ["| why not | rows |", "|---|---|"] + [f"| {a} | {b} |" for a, b in out["reasons"].items()] + [""]
    e = out.get("errors")
    if e:
        lines += [
            f"Errors on all {e['rows']} simulated rows (stratified sample of the expressible rows): median |TTFT "
            f"error| **{e['median_abs_ttft_err']:.1%}**, median |TPOT error| **{e['median_abs_tpot_err']:.1%}** "
            f"(signed medians: TTFT {e['signed_median']['ttft']:+.1%}, TPOT {e['signed_median']['tpot']:+.1%}); "
            f"disagg rows with unknown workers are read as 1 prefill + 1 decode; MTP is simulated where the "
            f"configuration ran it with a known draft length (DeepSeek-R1's per-position acceptance, "
            f"TensorRT-LLM blog 1), left out where undecidable. "
            f"The {e['as_run']['rows']} of them simulated as they ran (agg, agg with MTP; disagg with recorded "
            f"workers or InferenceX-configured workers, with MTP where the item ran it): "
            f"{e['as_run']['median_abs_ttft_err']:.1%} / "
            f"{e['as_run']['median_abs_tpot_err']:.1%} (signed {e['as_run']['signed_median']['ttft']:+.1%} / "
            f"{e['as_run']['signed_median']['tpot']:+.1%}).",
            "",
            "| deployment | rows | median abs TTFT err | median abs TPOT err | signed TTFT | signed TPOT |",
            "|---|---|---|---|---|---|",
        ]
        for k, v in e["by_deployment"].items():
            lines.append(f"| {k} | {v['n']} | {v['ttft']:.1%} | {v['tpot']:.1%} | {v['signed_ttft']:+.1%} | ")
            lines[-1] += f"{v['signed_tpot']:+.1%} |"
        lines.append("")
        for k, tab in e["by"].items():
            lines += [f"| {k} | median abs TTFT err | median abs TPOT err |", "|---|---|---|"]
            lines += [f"| {a} | {v['ttft_err']:.1%} | {v['tpot_err']:.1%} |" for a, v in tab.items()] + [""]
    return "\n".join(lines) + "\n"

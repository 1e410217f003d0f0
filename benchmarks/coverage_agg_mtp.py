"""Whether an InferenceX `agg` row ran MTP speculative decoding, read from InferenceX's own configuration.

InferenceX's `.github/configs/nvidia-master.yaml` holds single-node (`multinode: false`) entries in pairs such as
`dsr1-fp8-b200-trt` and `dsr1-fp8-b200-trt-mtp`, whose search-space items name `spec-decoding: mtp`. The agg rows
of the `2026-03-25.csv` / `2026-04-06.csv` exports say neither the entry nor the item; they carry the model, GPU,
precision, framework, isl / osl, tp / ep (in the id, `…_tp8_ep1_…` or `…_tp8_0_ep1_0_…`), the concurrency, the
`measured=` time and, for most, the container `image=`. A row is matched, like `coverage_disagg`, to the items in
force when it was measured (same rule: `coverage_disagg.in_force`) with the same model, GPU, precision,
framework, isl / osl, tp, ep and the concurrency in the item's `conc-start … conc-end` doublings; then by image
where the row has one (the MTP and non-MTP entries often pin different images). The reading:

- `none` / `mtp`: every matching item agrees;
- `MTP?`: MTP and non-MTP items both match and the image does not tell them apart (undecidable);
- `unknown`: no item matches (another commit range, a shape no item has, or a row without date / concurrency).

No measured TTFT / TPOT enters the reading. The table (`ground_truth/inferencex_agg.json`) is extracted from a
local mirror by `python benchmarks/coverage_agg_mtp.py --extract <InferenceX git dir>`; `--count` prints the
readings of all agg export rows.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from coverage_disagg import (
    CONFIG_PATH,
    GPUS,
    SOURCES,
    UNTIL,
    _fact,
    _table,
    _write,
    concs,
    in_force,
    item_history,
    mtp_speculative,
)

TABLE = Path(__file__).resolve().parent / "ground_truth" / "inferencex_agg.json"
# entry-name prefix -> the rows' model_path (the entries' `model` field names checkpoints, e.g. -FP8 / -NVFP4)
MODELS = {
    "dsr1": "deepseek-ai/DeepSeek-R1",
    "gptoss": "openai/gpt-oss-120b",
    "kimik2.5": "moonshotai/Kimi-K2.5",
    "glm5": "zhipuai/GLM-5",
    "qwen3.5": "Qwen/Qwen3.5-397B-A17B",
    "minimaxm2.5": "MiniMaxAI/MiniMax-M2.5",
}
FRAMEWORKS = {"trt": "trtllm", "sglang": "sglang", "vllm": "vllm"}


def _items_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, e in (config or {}).items():
        parts = str(name).split("-")
        if not isinstance(e, dict) or e.get("multinode") or e.get("disagg") or len(parts) < 4:
            continue
        fw, model = FRAMEWORKS.get(str(e.get("framework"))), MODELS.get(parts[0])
        if fw is None or model is None:
            continue
        for slc in e.get("seq-len-configs", []):
            for s in slc.get("search-space", []):
                out.append({
                    "entry": name, "model": model, "gpu": GPUS.get(parts[2], parts[2]), "backend": fw,
                    "precision": e.get("precision"), "image": str(e.get("image", "")).replace("#", "/"),
                    "isl": slc["isl"], "osl": slc["osl"], "tp": int(s["tp"]), "ep": int(s.get("ep", 1)),
                    "dp_attn": bool(s.get("dp-attn")), "spec": s.get("spec-decoding", "none"), "conc": concs(s),
                })  # fmt: skip
    return out


def extract(gitdir: str, until: str = UNTIL) -> dict[str, Any]:
    """Every single-node search-space item of `CONFIG_PATH` over the first-parent history of HEAD up to `until`,
    with the commit ranges in which it was present (the commits are coverage_disagg's)."""
    commits, items = item_history(gitdir, until, _items_of)
    return {
        "source": f"SemiAnalysisAI/InferenceX {CONFIG_PATH}, single-node items, first-parent history to {until}",
        "commits": commits,
        "items": items,
    }


@lru_cache(maxsize=1)
def _agg_table(path: Path = TABLE) -> dict[str, Any]:
    return _table(path)


def reading(row: pd.Series, table: dict[str, Any] | None = None) -> tuple[str, str]:
    """(`none` | `mtp` | `MTP?` | `unknown`, why): whether an agg export row ran MTP (module doc)."""
    kind, why, _ = _reading(row, table)
    return kind, why


def _reading(row: pd.Series, table: dict[str, Any] | None = None) -> tuple[str, str, list[dict[str, Any]]]:
    if row["mode"] != "agg":
        raise ValueError(f"row {row['id']}: mode {row['mode']!r}; expected 'agg'")
    src = str(row["silicon_data_source"])
    conc, measured = _fact(row, "silicon_concurrency"), _fact(row, "measured")
    shape = re.search(r"_tp(\d+)(?:_0)?_ep(\d+)(?:_0)?_", str(row["id"]))  # `_tp8_ep1_` or `_tp8_0_ep1_0_` (2026-03-25)
    if not any(s in src for s in SOURCES) or conc is None or measured is None or shape is None:
        return "unknown", "not an InferenceX 2026 export row with concurrency, date and tp / ep", []
    t = table if table is not None else _agg_table()
    at = in_force(measured, t)
    key = (str(row["model_path"]), str(row["system"]), str(row["backend"]), str(row["precision"]))
    tp, ep = int(shape.group(1)), int(shape.group(2))
    hits = [
        it for it in t["items"]
        if any(a <= at <= b for a, b in it["present"])
        and (it["model"], it["gpu"], it["backend"], it["precision"]) == key
        and (it["isl"], it["osl"], it["tp"], it["ep"]) == (int(row["isl"]), int(row["osl"]), tp, ep)
        and int(conc) in it["conc"]
    ]  # fmt: skip
    if not hits:
        return "unknown", f"no single-node item in force on {measured[:10]} matches", []
    specs = {it["spec"] for it in hits}
    image = _fact(row, "image")
    if len(specs) > 1 and image is not None:
        same = [it for it in hits if it["image"] == image]
        if same and len({it["spec"] for it in same}) == 1:
            hits, specs = same, {same[0]["spec"]}
    commit = t["commits"][at][0][:9]
    names = ", ".join(sorted({f"{it['entry']} ({it['spec']}, {it['image'].rsplit(':', 1)[-1]})" for it in hits}))
    if len(specs) > 1:
        return "MTP?", f"MTP and non-MTP items match, image {image or 'not recorded'} ({names} @{commit})", hits
    return specs.pop(), f"{CONFIG_PATH}@{commit}: {names}", hits


def draft_tokens(row: pd.Series) -> int | None:
    """Draft tokens per step of an agg row read `mtp`, from the benchmark script its entry runs (the same at every
    first-parent commit that touched it up to 2026-04-30, b0c4ed21b … 626932a11): TensorRT-LLM
    `benchmarks[/single_node]/dsr1_{fp4_b200,fp8_b200,fp8_h200}_trt_mtp.sh` set `MTP=3`, `MTP=1` when
    DP_ATTENTION is true (`speculative_config: {decoding_type: MTP, num_nextn_predict_layers: $MTP}`); SGLang
    `dsr1_fp8_b200_mtp.sh` runs EAGLE with `SPECULATIVE_NUM_STEPS=2` (e62c6acdf … 626932a11). Other MTP entries
    (e.g. Qwen3.5's): None."""
    kind, _, hits = _reading(row)
    if kind != "mtp" or not all(it["model"] == "deepseek-ai/DeepSeek-R1" for it in hits):
        return None
    if {it["backend"] for it in hits} == {"trtllm"} and len({it["dp_attn"] for it in hits}) == 1:
        return 1 if hits[0]["dp_attn"] else 3
    if {it["entry"] for it in hits} == {"dsr1-fp8-b200-sglang-mtp"}:
        return 2
    return None


def group(row: pd.Series) -> str:
    """coverage.py's group of an agg row: `agg` (no MTP, or not an InferenceX export), `agg, MTP` (ran MTP with a
    known draft length: simulated with it), `agg, MTP not simulated` (ran MTP; no draft length or no cited
    acceptance for the model) or `agg, MTP?` (undecidable, simulated without)."""
    kind = reading(row)[0]
    if kind == "MTP?":
        return "agg, MTP?"
    if kind != "mtp":
        return "agg"
    return "agg, MTP" if speculative(row) is not None else "agg, MTP not simulated"


def speculative(row: pd.Series) -> dict[str, Any] | None:
    """The scenario's `speculative` section for an agg row that ran MTP with a known draft length and a cited
    acceptance (`coverage_disagg.mtp_speculative`), else None."""
    k = draft_tokens(row)
    return None if k is None else mtp_speculative(str(row["model_path"]), k)


def count(df: pd.DataFrame) -> dict[str, Any]:
    """Readings of every agg export row, by model / backend."""
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, r in df[(df["mode"] == "agg") & df["silicon_data_source"].str.contains("source_file=2026-0")].iterrows():
        out[f"{r['model_path']} {r['backend']}"][reading(r)[0]] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", metavar="GITDIR", help="bare git dir of SemiAnalysisAI/InferenceX")
    ap.add_argument("--out", type=Path, default=TABLE)
    ap.add_argument("--count", type=Path, metavar="CSV", help="print the readings of this silicon CSV's agg rows")
    args = ap.parse_args()
    if args.extract:
        _write(extract(args.extract), args.out)
    if args.count:
        print(json.dumps(count(pd.read_csv(args.count)), indent=1))


if __name__ == "__main__":
    main()

"""The srt-slurm TensorRT-LLM recipe a recorded disagg row ran, and its decode workers' `max_batch_size`.

The recorded (`db-dump`) TensorRT-LLM disagg rows of `silicon_sample.csv` carry their worker counts, but their
`decode_batch_size` is the clients per decode worker (s9-disagg: decode_batch_size x workers x DP = clients on every
row looked at), not the cap the decode workers ran with. The runs were launched by srt-slurm (`srtctl`) from its
TensorRT-LLM recipes, whose `benchmark.concurrencies` list the client counts each recipe was run at and whose
`backend.trtllm_config.decode.max_batch_size` is the generation workers' cap, e.g. qiching/srt-slurm
`recipes/trtllm/h100-fp8/1k1k/stp/ctx1_gen3_tep16_batch8_eplb0_mtp0.yaml`@5063eb432 (2026-03-03): container
`ai-dynamo/tensorrtllm-runtime:0.8.1.post3`, 1 prefill + 3 decode workers, decode tp 16 without attention DP,
`max_batch_size: 8`, `concurrencies: '30'` (24 slots for 30 clients). A row is matched to every recipe version
of any date with the same GPU, precision, isl / osl, container tag, prefill and decode worker counts, decode tp and
the row's client count among the recipe's concurrencies; the slots are read only when every match agrees. Not
only the versions in force on the row's `measured=` day: InferenceX ran srt-slurm's `sa-submission-q1-2026` branch,
which reached the fork squashed (5063eb432, 2026-03-03), so the version that names a 2026-02 row's container tag and
worker counts can carry a later date (cfg494: the 2026-01-27 version names 0.8.1.post1 and 2 decode workers, the
2026-03-03 one 0.8.1.post3 and 3, as the row records; both `max_batch_size: 8`). `in_force` says which match
predates the row. A recipe whose container is an srtctl alias with no tag (`container: dynamo-trtllm`, the B200 /
GB200 / GB300 recipes of 5063eb432) matches on the other facts alone.
No measured latency is used to choose. The table (`ground_truth/srt_slurm_trtllm.json`) is extracted from a local
mirror by `python benchmarks/ttft_disagg_recipes.py --extract /work/.mirror/qiching+srt-slurm/repo`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import coverage_disagg as cd
import pandas as pd
import yaml

TABLE = Path(__file__).resolve().parent / "ground_truth" / "srt_slurm_trtllm.json"
ROOT = "recipes/trtllm"
GPUS = {"h100_sxm": "h100", "h200_sxm": "h200", "b200_sxm": "b200", "b300_sxm": "b300", "gb200": "gb200"}
GPUS |= {"gb300": "gb300"}
DEEPSEEK = re.compile(r"deepseek|dsr1", re.IGNORECASE)


def _git(gitdir: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", gitdir, *args], check=True, capture_output=True, text=True).stdout


def _concurrencies(value: Any) -> list[int]:
    """A recipe's `concurrencies`: a list, one number, or numbers joined by `x` (`'6x30'`, srtctl's sa-bench)."""
    items = value if isinstance(value, list) else str(value).split("x")
    return [int(c) for c in items]


def recipe_facts(text: str) -> dict[str, Any] | None:
    """The fields of one recipe version this reading uses; None when it is not a TensorRT-LLM disagg recipe."""
    y = yaml.safe_load(text)
    try:
        res, bench, trt = y["resources"], y["benchmark"], y["backend"]["trtllm_config"]
        dec = trt["decode"]
        return {
            "model": str(y["model"]["path"]),
            "gpu": str(res["gpu_type"]),
            "precision": str(y["model"]["precision"]),
            "container": str(y["model"]["container"]).rsplit(":", 1)[-1],
            "container_alias": ":" not in str(y["model"]["container"]),  # e.g. `dynamo-trtllm`: no tag to match
            "prefill_workers": int(res["prefill_workers"]),
            "decode_workers": int(res["decode_workers"]),
            "decode_tp": int(dec["tensor_parallel_size"]),
            "decode_dp": bool(dec.get("enable_attention_dp", False)),
            "decode_batch": int(dec["max_batch_size"]),
            "decode_stream_interval": int(dec.get("stream_interval", 1)),
            "decode_overlap": not bool(dec.get("disable_overlap_scheduler", False)),
            "isl": int(bench["isl"]),
            "osl": int(bench["osl"]),
            "conc": _concurrencies(bench["concurrencies"]),
            "frontends": frontends(y),
        }
    except (KeyError, TypeError, ValueError):
        return None


def frontends(y: dict[str, Any]) -> int | None:
    """Dynamo frontends the recipe ran (each routes with its own round-robin counter), None when unknown. srtctl
    (qiching/srt-slurm `src/srtctl/cli/mixins/frontend_stage.py` `_compute_frontend_topology`, the same at 75f6e32a3
    and 5063eb432): one frontend on a single node or with `enable_multiple_frontends: false`; otherwise nginx on the
    head node and min(`num_additional_frontends` + 1, worker nodes - 1) frontends (schema defaults: enabled, 9)."""
    fe, res = y.get("frontend") or {}, y["resources"]
    if str(fe.get("type", "dynamo")) != "dynamo" or "prefill_nodes" not in res or "decode_nodes" not in res:
        return None
    nodes = int(res["prefill_nodes"]) + int(res["decode_nodes"])
    if nodes <= 1 or not bool(fe.get("enable_multiple_frontends", True)):
        return 1
    return min(int(fe.get("num_additional_frontends", 9)) + 1, nodes - 1)


def extract(gitdir: str) -> dict[str, Any]:
    """Every version of every TensorRT-LLM recipe on the mirror's HEAD history, with its commit date."""
    out: list[dict[str, Any]] = []
    paths = [p for p in _git(gitdir, "ls-tree", "-r", "--name-only", "HEAD", ROOT).split() if p.endswith(".yaml")]
    for path in paths:
        for line in _git(gitdir, "log", "--format=%H %cI", "HEAD", "--", path).splitlines():
            sha, when = line.split()
            try:
                facts = recipe_facts(_git(gitdir, "show", f"{sha}:{path}"))
            except subprocess.CalledProcessError:  # deleted at that commit
                continue
            if facts is not None:
                out.append({"path": path, "commit": sha[:9], "date": when, **facts})
    head = _git(gitdir, "rev-parse", "HEAD").strip()
    return {"source": f"qiching/srt-slurm@{head[:9]} {ROOT}", "versions": out}


@lru_cache(maxsize=2)
def _table(path: Path = TABLE) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def in_force(versions: list[dict[str, Any]], measured: str) -> list[dict[str, Any]]:
    """Per recipe path, the newest version committed by the end of the `measured` UTC day (none if none yet)."""
    end = datetime.fromisoformat(measured[:10]).replace(tzinfo=UTC) + timedelta(days=1)
    best: dict[str, dict[str, Any]] = {}
    for v in versions:
        at = datetime.fromisoformat(v["date"]).astimezone(UTC)
        if at < end and (v["path"] not in best or at > datetime.fromisoformat(best[v["path"]]["date"])):
            best[v["path"]] = v
    return list(best.values())


def matches(row: pd.Series, table: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The recipe versions that fit a recorded TensorRT-LLM DeepSeek disagg row (module doc)."""
    src, conc, measured = (
        str(row["silicon_data_source"]),
        cd._fact(row, "silicon_concurrency"),
        cd._fact(row, "measured"),
    )
    image = re.search(r"tensorrtllm-runtime:(\S+)$", src)
    if row["backend"] != "trtllm" or row["mode"] != "disagg" or not src.startswith("db-dump") or not image:
        return []
    if conc is None or measured is None or pd.isna(row.get("decode_num_workers")):
        return []
    if not DEEPSEEK.search(str(row["model_path"])):  # every recipe read serves DeepSeek-R1
        return []
    key = (
        GPUS.get(str(row["system"])),
        str(row["precision"]),
        image.group(1),
        int(row["isl"]),
        int(row["osl"]),
        int(row["prefill_num_workers"]),
        int(row["decode_num_workers"]),
        int(row["decode_tp_size"]),
    )
    t = table if table is not None else _table()
    fields = ("gpu", "precision", "container", "isl", "osl", "prefill_workers", "decode_workers", "decode_tp")
    return [
        v
        for v in t["versions"]
        if all(v[f] == k or (f == "container" and v.get("container_alias")) for f, k in zip(fields, key, strict=True))
        and int(conc) in v["conc"]
        and DEEPSEEK.search(v["model"])
    ]


def decode_slots(row: pd.Series, table: dict[str, Any] | None = None) -> int | None:
    """Requests one decode worker of a recorded TensorRT-LLM disagg row runs at once: the matching recipe's
    `max_batch_size` per attention rank x its ranks (decode tp with `enable_attention_dp`, else 1); None unless
    every match agrees, or when the recipe's attention DP contradicts the row's recorded decode DP size."""
    found = {(v["decode_batch"], v["decode_tp"] if v["decode_dp"] else 1) for v in matches(row, table)}
    if len(found) != 1:
        return None
    batch, ranks = found.pop()
    dp = row.get("decode_attention_dp_size")
    if (1 if pd.isna(dp) else int(dp)) != ranks:
        return None
    return int(batch * ranks)


def config_recipes(row: pd.Series, table: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The recipe versions an InferenceX-configured TensorRT-LLM disagg row names: the `CONFIG_FILE` of every
    nvidia-master.yaml item it matches (coverage_disagg), each at its newest version by the row's day, else any.
    InferenceX spells the folder `recipies/` (sic)."""
    if row["backend"] != "trtllm" or row["mode"] != "disagg" or cd.deployment(row).status != "config":
        return []
    conc, measured = cd._fact(row, "silicon_concurrency"), cd._fact(row, "measured")
    t = cd._table()
    at = cd.in_force(str(measured), t)
    paths = {
        "recipes/" + x.split("=", 1)[1].split("/", 1)[1]
        for it in t["items"]
        if cd._matches(it, row, int(str(conc)), at)
        for x in it["settings"]
        if x.startswith("CONFIG_FILE=")
    }
    versions = (table if table is not None else _table())["versions"]
    out: list[dict[str, Any]] = []
    for path in sorted(paths):
        mine = [v for v in versions if v["path"] == path]
        out += in_force(mine, str(measured)) or mine[:1]  # newest by the row's day, else newest
    return out


def row_recipes(row: pd.Series) -> list[dict[str, Any]]:
    """The recipe versions a TensorRT-LLM disagg row ran, recorded (`matches`) or configured (`config_recipes`)."""
    return matches(row) or config_recipes(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extract", metavar="GITDIR", required=True, help="a git dir of qiching/srt-slurm")
    args = ap.parse_args()
    data = extract(args.extract)
    TABLE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(data['versions'])} recipe versions -> {TABLE}")


if __name__ == "__main__":
    main()

"""The srt-slurm recipes behind InferenceX's SGLang disaggregated items: what each decode worker was allowed to run.

InferenceX's `dsr1-*-dynamo-sglang` items name a recipe of ishandhanani/srt-slurm (`CONFIG_FILE=recipes/...`, the
launch scripts clone its branch `sa-submission-q1-2026`). That repository cannot be fetched here; its fork
qiching/srt-slurm carries ishandhanani's main-line history (PRs #129-#233, 2026-02 to 2026-04-01) and every recipe the
items name. `python benchmarks/coverage_recipes_sglang.py --extract <git dir> --inferencex-table ...` reads, for each
named recipe, every commit of the fork that changed it (`git log --follow`-free, by path) and keeps the serving knobs
that decide a request's wait or its exchange (`ground_truth/srt_slurm_sglang.json`):

- decode `max-running-requests`: SGLang's cap on the requests a server runs at once (all its attention-DP ranks
  together: `ServerArgs` divides it by `dp_size` per rank under DP attention). With more clients than slots the rest
  wait after their prefill for a slot; the first token, streamed by the decode worker at admission, follows the wait.
- `moe-a2a-backend` per pool: `deepep` where the recipe runs DeepEP's dispatch / combine (servesim
  `serving_engine.moe_all2all: deepep`, sim/costmodel/alltoall.py).
- decode `cuda-graph-max-bs` / `cuda-graph-bs`, `stream-interval`, prefill `max-running-requests`,
  `chunked-prefill-size` and the recipe's `frontend` (every recipe read runs Dynamo frontends with no router
  arguments: srtctl launches `python3 -m dynamo.frontend --http-port=...` plus the recipe's `frontend.args`,
  src/srtctl/frontends/dynamo.py @452bb8d4d, so Dynamo's default `--router-mode round-robin` routed the decode
  workers).

A row reads the version in force at its `measured=` time: the fork's last commit of that path before the end of the
row's measured day; where the fork holds only later versions (its copies of the B200 recipes landed with the merges
5063eb432, 2026-03-03, and 4a22a1816, 2026-03-25, after the 2026-02-07 to 2026-03-18 rows that name them) none, as a
value the run could not have used. Nothing here is fitted and no measured latency enters a choice: a knob applies
where every recipe matching the row agrees on it (an MTP and a non-MTP recipe both match the `config, MTP?` rows;
when they disagree the row reads none).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parent / "ground_truth" / "srt_slurm_sglang.json"
SOURCE = "qiching/srt-slurm (fork of ishandhanani/srt-slurm), main"
DECODE_KEYS = {
    "max_running": ("max-running-requests",),
    "cuda_graph_bs": ("cuda-graph-max-bs", "cuda-graph-bs"),
    "a2a": ("moe-a2a-backend",),
    "dp": ("dp-size", "data-parallel-size"),
    "dp_attention": ("enable-dp-attention",),
    "stream_interval": ("stream-interval",),
}
PREFILL_KEYS = {
    "max_running": ("max-running-requests",),
    "chunk": ("chunked-prefill-size",),
    "a2a": ("moe-a2a-backend",),
    "dp": ("dp-size", "data-parallel-size"),
    "dp_attention": ("enable-dp-attention",),
}


def _pick(section: dict[str, Any], keys: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, aliases in keys.items():
        v = next((section[a] for a in aliases if a in section), None)
        if name == "cuda_graph_bs" and isinstance(v, list):
            v = max(int(x) for x in v)
        out[name] = v
    return out


def recipe_facts(text: str) -> dict[str, Any]:
    """The knobs of one recipe file (module doc); None where the recipe does not set one."""
    import yaml

    y = yaml.safe_load(text) or {}
    sc = (y.get("backend") or {}).get("sglang_config") or {}
    res = y.get("resources") or {}
    front = y.get("frontend") or {}
    return {
        "decode_workers": res.get("decode_workers"),
        "prefill_workers": res.get("prefill_workers"),
        "decode": _pick(sc.get("decode") or {}, DECODE_KEYS),
        "prefill": _pick(sc.get("prefill") or {}, PREFILL_KEYS),
        "frontend": {"type": front.get("type", "dynamo"), "args": front.get("args")},
    }


# --- reading -------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _table(path: Path = TABLE) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def version(recipe: str, measured: str, table: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The version of `recipe` in force at `measured` (ISO date or time): the last one committed by the end of that
    UTC day (module doc); None for a recipe the table does not hold or holds only in later versions."""
    t = table if table is not None else _table()
    versions = t["recipes"].get(recipe)
    day = measured[:10] + "T23:59:59Z"
    before = [v for v in versions or () if v["date"] <= day]
    return dict(before[-1]) if before else None


def recipes_of(item: dict[str, Any]) -> list[str]:
    """The srt-slurm recipe paths an InferenceX item names (`CONFIG_FILE=recipes/...`)."""
    return [x.split("=", 1)[1] for x in item["settings"] if x.startswith("CONFIG_FILE=")]


def _agreed(items: list[dict[str, Any]], measured: str, get: Any) -> Any:
    """The value `get(version)` every recipe of `items` gives at `measured`, or None (none read, or they differ)."""
    found = set()
    for it in items:
        names = recipes_of(it)
        if it["backend"] != "sglang" or not names:
            return None
        for name in names:
            v = version(name, measured)
            if v is None:
                return None
            found.add(get(v))
    return found.pop() if len(found) == 1 else None


def decode_batch(items: list[dict[str, Any]], measured: str) -> int | None:
    """Requests per attention-DP rank of the decode workers of SGLang items, from their recipes' decode
    `max-running-requests` (a server's total, divided over its DP ranks under DP attention); None where a recipe
    is not read, sets none, or the matching recipes disagree."""

    def per_rank(v: dict[str, Any]) -> int | None:
        d = v["decode"]
        if d["max_running"] is None:
            return None
        ranks = int(d["dp"] or 1) if d["dp_attention"] else 1
        return int(d["max_running"]) // ranks

    return _agreed(items, measured, per_rank)


def moe_all2all(items: list[dict[str, Any]], measured: str) -> str | None:
    """`deepep` where every matching recipe passes `moe-a2a-backend: deepep` to every pool that runs DP attention
    (the only pools whose expert exchange servesim prices: `serving_engine.moe_all2all` is one value for both), and
    at least one pool; else None (the preset's exchange stays)."""

    def a2a(v: dict[str, Any]) -> str | None:
        pools = [v[r] for r in ("prefill", "decode") if v[r]["dp_attention"]]
        if pools and all(p["a2a"] == "deepep" for p in pools):
            return "deepep"
        return None

    return _agreed(items, measured, a2a)


# --- extraction (run once; the table is committed) -----------------------------------------------------------------


def _git(gitdir: str, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={gitdir}", *args], capture_output=True, text=True, check=True).stdout


def extract(gitdir: str, inferencex_table: Path) -> dict[str, Any]:
    """Every version of every recipe an SGLang item of `inferencex_table` names, from the fork at `gitdir`."""
    items = json.loads(inferencex_table.read_text())["items"]
    names = sorted({n for it in items if it["backend"] == "sglang" for n in recipes_of(it)})
    recipes: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        log = _git(gitdir, "log", "--format=%H %ct", "HEAD", "--", name).split("\n")
        for line in reversed([x for x in log if x]):
            h, epoch = line.split()
            when = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            cmd = ["git", f"--git-dir={gitdir}", "show", f"{h}:{name}"]
            shown = subprocess.run(cmd, capture_output=True, text=True)
            if shown.returncode == 0:  # not a deletion
                text = shown.stdout
                recipes.setdefault(name, []).append({"commit": h[:9], "date": when, **recipe_facts(text)})
    return {"source": SOURCE, "head": _git(gitdir, "rev-parse", "HEAD").strip()[:9], "recipes": recipes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", metavar="GITDIR", required=True, help="git dir of the srt-slurm fork")
    ap.add_argument("--inferencex-table", type=Path, default=TABLE.parent / "inferencex_disagg.json")
    ap.add_argument("--out", type=Path, default=TABLE)
    args = ap.parse_args()
    data = extract(args.extract, args.inferencex_table)
    head = {k: v for k, v in data.items() if k != "recipes"}
    lines = [f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(data["recipes"].items())]
    args.out.write_text(json.dumps(head, indent=1)[:-2] + ',\n "recipes": {\n' + ",\n".join(lines) + "\n }\n}\n")


if __name__ == "__main__":
    main()

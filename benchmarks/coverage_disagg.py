"""Disaggregated deployments of the InferenceX silicon rows, read from InferenceX's own configuration.

The `disagg` rows of `silicon_sample.csv` from InferenceX's `2026-03-25.csv` / `2026-04-06.csv` exports list each
pool's tp and ep but not how many prefill and decode workers ran, nor whether attention was data-parallel, nor
whether MTP speculative decoding was on (and their decode `moe_ep_size` repeats the prefill pool's ep: the
`…_c24_tp4_0_ep4_0_420` row lists decode tp 8 / ep 4 for an entry whose decode pool is tp 8 / ep 8). InferenceX
publishes what it ran: `.github/configs/nvidia-master.yaml` of SemiAnalysisAI/InferenceX, whose multi-node
entries (`multinode: true, disagg: true`, e.g. `dsr1-fp4-gb200-dynamo-trt`) list per search-space item the
`conc-list`, `spec-decoding` (`mtp` or none) and per pool `num-worker`, `tp`, `ep`, `dp-attn` (CONFIGS.md in the
same folder defines the fields; the recipe names read `dep8` = dp-attn with ep 8, `tep8` = tp 8 with ep 8).

A row is matched to the items in force when it was `measured=` (the first-parent commit of `main` in force at its
timestamp; for a bare date, as the `2026-04-06.csv` rows carry, at the end of that UTC day) with the same model, GPU,
precision, framework (dynamo-trt = trtllm, dynamo-sglang = sglang), isl / osl, prefill tp and ep, decode tp and
the row's concurrency in `conc-list`. When every matching item gives the same workers and pools, the deployment
is known (cited as entry@commit); when none matches, or matching items disagree (an MTP and a non-MTP item at the
same concurrency with different worker counts, which the row cannot tell apart), it is unknown and says why.
No measured TTFT / TPOT is used to choose. An item that runs MTP (`spec-decoding: mtp`, all DeepSeek-R1) is
simulated with it when its recipe names the draft length (`draft_tokens`), at the published per-position
acceptance of DeepSeek-R1's module (`MTP_ACCEPTANCE`). The table (`ground_truth/inferencex_disagg.json`) is
extracted from a local mirror by `python benchmarks/coverage_disagg.py --extract <InferenceX git dir>`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import coverage_recipes_sglang as srt
import pandas as pd

TABLE = Path(__file__).resolve().parent / "ground_truth" / "inferencex_disagg.json"
CONFIG_PATH = ".github/configs/nvidia-master.yaml"  # moved to the repo root on 2026-07-02 (e9fc98807)
UNTIL = "2026-04-30"  # the newest row was measured 2026-04-02
# entry-name tokens (`<model-prefix>-<precision>-<gpu>-<framework>`) -> the rows' model_path / system / backend
MODELS = {
    "dsr1": "deepseek-ai/DeepSeek-R1",
    "gptoss": "openai/gpt-oss-120b",
    "kimik2.5": "moonshotai/Kimi-K2.5",
    "glm5": "zhipuai/GLM-5",
}
GPUS = {
    "h100": "h100_sxm",
    "h200": "h200_sxm",
    "b200": "b200_sxm",
    "b300": "b300_sxm",
    "gb200": "gb200",
    "gb300": "gb300",
}
FRAMEWORKS = {"dynamo-trt": "trtllm", "dynamo-sglang": "sglang"}
SOURCES = ("source_file=2026-03-25.csv", "source_file=2026-04-06.csv")  # the exports without worker counts
# Where the items in force that match a row disagree (an MTP and a non-MTP item at the same concurrency with
# different worker counts), simulate the smallest of them (`smallest`) rather than 1 prefill + 1 decode worker,
# which is below every one of them (VALIDATION.md, "Saturation: the servesim-only rows (branch s15-sat)").
READ_BOUND = True
# MTP draft length of the dynamo-sglang items, whose CONFIG_FILE names no length: the recipe's decode
# `speculative-num-steps` (SGLang's EAGLE worker drafts that many tokens a step, topk 1, and verifies
# `speculative-num-draft-tokens` = steps + 1). InferenceX's launch scripts clone ishandhanani/srt-slurm at branch
# `sa-submission-q1-2026` (runners/launch_{b200-dgxc-slurm,b300-nv,gb200-nv,gb300-nv}.sh @68bf34d2c); that
# repository is not mirrored here, these are the same paths in its fork qiching/srt-slurm@5063eb432640 (all six:
# EAGLE, num-steps 2, eagle-topk 1, num-draft-tokens 3). The single-file recipes (`b200-fp{4,8}/1k1k.yaml:
# zip_override_mtp_*`, `b200-fp8/8k1k_mtp_*.yaml`) say the same in ishandhanani/srt-slurm@3b691296 / @16ce9a9a.
SRT_RECIPE_MTP = {
    "recipes/b200-fp4/1k1k/mtp/max-tpt-dep4-1p-dep8-1d.yaml": 2,
    "recipes/b200-fp8/1k1k/mtp/low-latency-tep8-1p3d.yaml": 2,
    "recipes/h100/1k1k/mtp/h100-fp8-1p2d-max-tp-mtp.yaml": 2,
    "recipes/h100/8k1k/mtp/h100-fp8-1p1d-max-tp-mtp.yaml": 2,
    "recipes/h200/8k1k/bs128-1p1d-dep-mtp.yaml": 2,
    "recipes/h200/8k1k/bs8-1p6d-mtp.yaml": 2,
}
# Acceptance of DeepSeek-R1's MTP module per draft position, as TensorRT-LLM runs it (one module, `num_nextn_predict_
# layers: 1`, called k times on its own output: "MTP Eagle"). Source: TensorRT-LLM tech blog 1 ("Pushing Latency
# Boundaries: Optimizing DeepSeek-R1 Performance on NVIDIA B200 GPUs", docs/source/blogs/tech_blog/blog1_..._B200_
# GPUs.md @01c4ece91, table "Autoregressive MTP Layers"): mean acceptance length 1.92 / 2.58 / 2.82 / 2.99 / 3.01
# with 1..5 MTP layers, DeepSeek-R1 FP4 on 8 B200, batch 1, ISL / OSL 1k / 2k, strict (top-1) acceptance - the same
# rule InferenceX's DeepSeek-R1 MTP recipes run (none sets `use_relaxed_acceptance_for_thinking`; the blog's
# "MTP3_top1, d0.0" row is the 2.82). Each length is one run, so the step gains `AL_k - 1 = sum_{i<=k} P(first i
# drafts accepted)` and `P(i) = AL_i - AL_{i-1}`; the conditional rate of position i is P(i) / P(i-1)
# (`rates_from_lengths`): 0.92, 0.717, 0.364, 0.708, 0.118. With these rates servesim's expected tokens per step for
# k draft tokens is exactly the blog's AL_k for every k <= 5 (no assumption that rates are geometric or that a
# position's rate does not depend on k beyond what the runs show). Position 4's rate above position 3's is the
# measurement's noise (no request count given); the rows use k <= 3. Caveats: the blog names no dataset (its
# workload is 1k/2k text); the rows' prompts are random token ids with --ignore-eos and greedy sampling (the
# benchmark client sends temperature 0), whose acceptance is not measured anywhere found (COVERAGE.md, "TPOT by group
# (branch s8-tpot)"). Its first position, 0.92, sits just above DeepSeek-V3's reported 85-90 % for the second token
# (arXiv 2412.19437, section 5.4.3), the source used before this. SGLang's EAGLE worker (topk 1) chains the same
# module the same way, so the curve is read as the module's, whatever the engine.
MTP_LENGTHS = {"deepseek-ai/DeepSeek-R1": (1.92, 2.58, 2.82, 2.99, 3.01)}


def rates_from_lengths(lengths: tuple[float, ...]) -> list[float]:
    """Conditional acceptance per draft position from the mean acceptance lengths of runs with 1, 2, ... draft
    tokens (AL_0 = 1): P(first i accepted) = AL_i - AL_{i-1}; rate_i = P(i) / P(i-1)."""
    probs = [b - a for a, b in zip((1.0, *lengths[:-1]), lengths, strict=True)]
    return [p / q for p, q in zip(probs, (1.0, *probs[:-1]), strict=True)]


MTP_ACCEPTANCE = {m: rates_from_lengths(al) for m, al in MTP_LENGTHS.items()}


def mtp_speculative(model: str, k: int) -> dict[str, Any] | None:
    """The `speculative` section of k-token MTP on `model` at its cited per-position acceptance (`MTP_ACCEPTANCE`,
    the first k positions); None when the model has no cited acceptance or k exceeds the published curve."""
    rates = MTP_ACCEPTANCE.get(model)
    if rates is None or k > len(rates):
        return None
    return {"kind": "mtp", "num_tokens": k, "acceptance": rates[:k]}


@dataclass(frozen=True)
class Deployment:
    """How a disagg row ran. `status`: `recorded` (the row lists its workers), `config` (read from InferenceX's
    configuration: `pools` and `spec` hold it, `cite` says where) or `unknown` (`why` says why)."""

    status: str  # also `bound`: matching items disagree; the smallest of them is simulated (`smallest`)
    pools: dict[str, dict[str, int]] = field(default_factory=dict)
    spec: str | None = None
    cite: str = ""
    why: str = ""
    mtp: int | None = None  # draft tokens per step when the item runs MTP and its recipe names one length
    decode_batch: int | None = None  # the decode workers' max batch per attention rank, where the recipe names one
    moe_all2all: str | None = None  # `deepep` where the SGLang recipes run DeepEP (coverage_recipes_sglang)

    @property
    def pools_read(self) -> bool:
        """Pools read from InferenceX's configuration: the one item in force (`config`) or, where the matching
        items disagree, the smallest of them (`bound`, under READ_BOUND)."""
        return self.status in ("config", "bound")

    @property
    def group(self) -> str:
        """The row's group in coverage.py's tables: `recorded`, `config` (no MTP), `config, MTP` (the item runs
        MTP speculative decoding with a draft length its recipe names: simulated with it, `speculative`),
        `config, MTP, k?` (the item runs MTP, its recipe names no draft length: simulated without),
        `config, MTP?` (an MTP and a non-MTP item of the same shape both match) or `unknown`."""
        if self.status != "config" or self.spec == "none":
            return self.status
        if self.spec == "mtp":
            return "config, MTP" if self.mtp is not None else "config, MTP, k?"
        return "config, MTP?"

    def as_run(self, model: str) -> bool:
        """Simulated as it ran: workers known, and MTP simulated where the item ran it (with the assumed
        acceptance, `MTP_ACCEPTANCE`); rows with MTP left out or undecidable are not, nor a `config, MTP` row
        whose model has no cited acceptance (simulated without MTP, `speculative` is None)."""
        if self.group == "config, MTP":
            return self.speculative(model) is not None
        return self.group in ("recorded", "config")

    def speculative(self, model: str) -> dict[str, Any] | None:
        """The scenario's `speculative` section for a row that ran MTP with a known draft length and a model whose
        MTP acceptance has a source (`MTP_ACCEPTANCE`); None otherwise (simulated without MTP)."""
        if self.group != "config, MTP" or self.mtp is None:
            return None
        return mtp_speculative(model, self.mtp)


def pool_layout(workers: int, tp: int, ep: int, dp_attn: bool) -> dict[str, int]:
    """A configuration pool as a servesim pool: `dp-attn` runs attention data-parallel over the `tp` GPUs (one
    attention rank per GPU, SGLang `--enable-dp-attention` / TensorRT-LLM `enable_attention_dp`), otherwise
    attention is tensor-parallel over them; the MoE layers take ep of them as expert ranks, tp / ep as MoE TP."""
    if min(workers, tp, ep) < 1 or tp % ep:
        raise ValueError(f"pool num-worker {workers}, tp {tp}, ep {ep}: expected positive counts, ep dividing tp")
    out = (
        {"instances": workers, "tp": 1, "attention_dp": tp} if dp_attn and tp > 1 else {"instances": workers, "tp": tp}
    )
    if ep > 1 or (dp_attn and tp > 1):
        out |= {"ep": ep, "moe_tp": tp // ep}
    return out


@lru_cache(maxsize=2)
def _table(path: Path = TABLE) -> dict[str, Any]:
    data = json.loads(path.read_text())
    data["_dates"] = [datetime.fromisoformat(d).astimezone(UTC) for _, d in data["commits"]]
    return data


def _fact(row: pd.Series, key: str) -> str | None:
    m = re.search(rf"{key}=([^;]+)", str(row["silicon_data_source"]))
    return m.group(1).strip() if m else None


def in_force(measured: str, table: dict[str, Any]) -> int:
    """Index of the configuration commit in force when `measured` was taken (-1: none yet): at its timestamp when
    it has one (a commit at that very second counts), at the end of its UTC day when it is a bare date, since the
    run may have started any time that day. The `2026-04-06.csv` export writes its bare dates as midnight
    (`2026-03-30T00:00:00.000Z`), so an exact midnight is read as a date; the `2026-03-25.csv` rows carry times."""
    if len(measured.strip()) <= 10 or re.fullmatch(r"T00:00:00(\.0+)?(Z|\+00:00)?", measured.strip()[10:]):
        day = datetime.fromisoformat(measured[:10]).replace(tzinfo=UTC) + timedelta(days=1)
        return bisect.bisect_left(table["_dates"], day) - 1
    at = datetime.fromisoformat(measured.strip().replace("Z", "+00:00"))
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return bisect.bisect_right(table["_dates"], at) - 1


def _matches(item: dict[str, Any], row: pd.Series, conc: int, at: int) -> bool:
    pre, dec = item["prefill"], item["decode"]
    return (
        any(a <= at <= b for a, b in item["present"])
        and (item["model"], item["gpu"], item["backend"], item["precision"])
        == tuple(str(row[k]) for k in ("model_path", "system", "backend", "precision"))
        and (item["isl"], item["osl"]) == (int(row["isl"]), int(row["osl"]))
        and conc in item["conc"]
        and (pre[1], pre[2], dec[1]) == (row["prefill_tp_size"], row["prefill_moe_ep_size"], row["decode_tp_size"])
    )


def _placeholder(item: dict[str, Any]) -> bool:
    """The early GB200 SGLang items (dsr1-{fp4,fp8}-gb200-dynamo-sglang to 2026-01) size their pools by node counts
    (`PREFILL_NODES=`, `DECODE_NODES=`, `SCRIPT_MODE=`) in the launch script; their tp / ep / dp-attn are
    placeholders: "tp, ep, and dp-attn do nothing because they are hardcoded in the following file" (the item's
    comment, nvidia-master.yaml of December 2025)."""
    return item["backend"] == "sglang" and any(
        x.startswith(("PREFILL_NODES=", "SCRIPT_MODE=")) for x in item["settings"]
    )


def draft_tokens(item: dict[str, Any]) -> int | None:
    """MTP draft tokens per step of an MTP item, from its recipe: TensorRT-LLM recipe names end in `_mtp<k>`
    (`ctx1_gen5_tep8_batch32_eplb0_mtp3.yaml`) or set `DECODE_MTP_SIZE=<k>` (the early GB200 items); SGLang
    recipes from `SRT_RECIPE_MTP`. None when the recipe names none (e.g. `…_eplb0_mtp.yaml`) or the item has no
    MTP."""
    if item["spec"] != "mtp":
        return None
    found = set()
    for x in item["settings"]:
        found |= {int(k) for k in re.findall(r"_mtp(\d+)(?=[_.])", x) + re.findall(r"^DECODE_MTP_SIZE=(\d+)$", x)}
        if x.startswith("CONFIG_FILE=") and x[len("CONFIG_FILE=") :] in SRT_RECIPE_MTP:
            found.add(SRT_RECIPE_MTP[x[len("CONFIG_FILE=") :]])
    return found.pop() if len(found) == 1 else None


def decode_batch(item: dict[str, Any]) -> int | None:
    """The generation workers' `max_batch_size` of a TensorRT-LLM item (per attention-DP rank: each rank runs its
    own PyExecutor scheduler), from its settings: `DECODE_MAX_BATCH_SIZE=<n>` (the early GB200 items) or the
    recipe name's `batch<n>` (`ctx1_gen5_dep8_batch16_eplb0_mtp2_720.yaml`; the recipes' names give the decode
    worker's `max_batch_size`, e.g. InferenceX `benchmarks/multi_node/srt-slurm-recipes/trtllm/glm5/disagg/
    trtllm_dynamo/gb200_nvfp4/ISL1K_OSL1K/STP/ctx1dep4_gen1dep32_batch16_eplb0_mtp0.yaml`@843c6254f sets
    `decode: max_batch_size: 16`). None for SGLang items (their recipes' `max-running-requests` are read by
    coverage_recipes_sglang.decode_batch) or when
    none / several are named."""
    if item["backend"] != "trtllm":
        return None
    found: set[int] = set()
    for x in item["settings"]:
        found |= {int(n) for n in re.findall(r"^DECODE_MAX_BATCH_SIZE=(\d+)$", x)}
        if x.startswith("CONFIG_FILE="):
            name = Path(x).name
            found |= {int(n) for n in re.findall(r"_batch(\d+)_", name)} if "_gen" in name else set()
    return found.pop() if len(found) == 1 else None


def smallest(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The matching item of fewest GPUs (prefill workers x tp + decode workers x tp), then fewest decode slots (a
    named `decode_batch` x attention-DP ranks x decode workers; an unnamed batch counts as unbounded), then its
    entry name (deterministic). The row ran one of `items`, each with at least as many GPUs: read as a lower bound
    on the deployment, it never needs a measured time to choose, and MTP is left out (`group` `bound`), which
    also bounds the decode from below. An item's pool is `[workers, tp, ep, dp_attn]`."""

    def key(it: dict[str, Any]) -> tuple[int, float, str]:
        (pw, ptp, _, _), (dw, dtp, _, ddp) = it["prefill"], it["decode"]
        batch = decode_batch(it)
        slots = math.inf if batch is None else batch * (dtp if ddp and dtp > 1 else 1) * dw
        return pw * ptp + dw * dtp, slots, str(it["entry"]) + str(it["spec"])

    return min(items, key=key)


def decode_slots(row: pd.Series, dep: Deployment | None = None) -> int | None:
    """Requests one decode worker of the row's deployment runs at once, where its recipe says (`decode_batch` x
    the decode pool's attention-DP ranks; for a recorded TensorRT-LLM row, the srt-slurm recipe it ran,
    `ttft_disagg_recipes.decode_slots`); None where no recipe value is read (unknown rows, recorded rows with no
    single matching recipe; SGLang items whose srt-slurm recipes are not read or disagree).
    With more clients than decode slots the rest wait for one, and that wait falls before the client's first
    token, which comes from the decode worker (COVERAGE.md, "Disaggregated first token (branch s9-disagg)")."""
    d = dep if dep is not None else deployment(row)
    if d.status == "recorded":  # the srt-slurm recipe the recorded row ran (ttft_disagg_recipes, s13-dis)
        from ttft_disagg_recipes import decode_slots as recorded_slots  # (it imports this module)

        return recorded_slots(row)
    if not d.pools_read or d.decode_batch is None:
        return None
    return d.decode_batch * d.pools["decode"].get("attention_dp", 1)


def deployment(row: pd.Series, table: dict[str, Any] | None = None) -> Deployment:
    """The deployment a disagg row ran (see module doc). Raises ValueError for a row that is not disagg."""
    if row["mode"] != "disagg":
        raise ValueError(f"row {row['id']}: mode {row['mode']!r}; expected 'disagg'")
    if not pd.isna(row.get("decode_num_workers")) and not pd.isna(row.get("prefill_num_workers")):
        return Deployment("recorded")
    src = str(row["silicon_data_source"])
    if not any(s in src for s in SOURCES):
        return Deployment("unknown", why="no worker counts and not an InferenceX 2026 export")
    conc, measured = _fact(row, "silicon_concurrency"), _fact(row, "measured")
    if conc is None or measured is None or not re.fullmatch(r"\d{4}-\d\d-\d\d.*", measured):
        return Deployment("unknown", why="no silicon_concurrency / measured date in the source column")
    t = table if table is not None else _table()
    at = in_force(measured, t)
    hits = [it for it in t["items"] if _matches(it, row, int(conc), at)]
    if not hits:
        return Deployment("unknown", why=f"no {CONFIG_PATH} item in force on {measured[:10]} matches")
    if any(_placeholder(it) for it in hits):
        return Deployment("unknown", why=f"pools set by the launch script, not the item ({hits[0]['entry']})")
    shapes = {(tuple(it["prefill"]), tuple(it["decode"])) for it in hits}
    commit = t["commits"][at][0][:9]
    names = ", ".join(sorted({f"{it['entry']} ({it['spec']})" for it in hits}))
    if len(shapes) > 1:
        why = f"{len(shapes)} deployments match ({names} @{commit})"
        if not READ_BOUND:
            return Deployment("unknown", why=why)
        low = smallest(hits)
        sglang = low["backend"] == "sglang"
        return Deployment(
            "bound",
            pools={"prefill": pool_layout(*low["prefill"]), "decode": pool_layout(*low["decode"])},
            cite=f"{CONFIG_PATH}@{commit}: {low['entry']} ({low['spec']}), the smallest of {len(shapes)}",
            why=why,
            decode_batch=srt.decode_batch([low], measured) if sglang else decode_batch(low),
            moe_all2all=srt.moe_all2all([low], measured) if sglang else None,
        )
    (pre, dec), specs = next(iter(shapes)), {it["spec"] for it in hits}
    spec = specs.pop() if len(specs) == 1 else None
    ks = {draft_tokens(it) for it in hits} if spec == "mtp" else set()
    sglang = hits[0]["backend"] == "sglang"
    batches = {srt.decode_batch(hits, measured)} if sglang else {decode_batch(it) for it in hits}
    return Deployment(
        "config",
        pools={"prefill": pool_layout(*pre), "decode": pool_layout(*dec)},
        spec=spec,
        cite=f"{CONFIG_PATH}@{commit}: {names}",
        mtp=ks.pop() if len(ks) == 1 else None,
        decode_batch=batches.pop() if len(batches) == 1 else None,
        moe_all2all=srt.moe_all2all(hits, measured) if sglang else None,
    )


def reading(row: pd.Series) -> str:
    """One line for the row's reading: how its workers were found (or that they were not)."""
    d = deployment(row)
    if d.status == "recorded":
        return "workers as recorded"
    if d.status == "unknown":
        return f"workers unknown, simulated as 1 prefill + 1 decode: {d.why}"
    p, q = d.pools["prefill"], d.pools["decode"]
    if d.status == "bound":
        workers = f"{p['instances']} prefill + {q['instances']} decode workers"
        return f"{d.why}: the smallest simulated, {workers}, no MTP ({d.cite})"
    spec = {None: "MTP unknown", "none": "no MTP", "mtp": f"MTP, {d.mtp} draft tokens" if d.mtp else "MTP, k unknown"}[
        d.spec
    ]
    return f"{p['instances']} prefill + {q['instances']} decode workers ({spec}), {d.cite}"


def headline(res: pd.DataFrame) -> dict[str, Any]:
    """coverage.py's error summary of simulated rows (columns `deployment`, `as_run`, `ttft_err`, `tpot_err`): the
    headline medians over every simulated (expressible) row, the row set the >= 90 % share counts and issue 13 sets
    its targets on; beside it, `as_run`: only the rows simulated as they ran (agg rows, disagg rows with recorded
    workers or configured workers, with MTP where the item ran it and names its draft length), leaving out those
    with unknown workers (simulated as 1 prefill + 1 decode worker) or MTP left out or undecidable; and each
    group alone."""

    def stats(x: pd.DataFrame) -> dict[str, Any]:
        t, p = x["ttft_err"], x["tpot_err"]
        return {"n": len(x), "ttft": float(t.abs().median()), "tpot": float(p.abs().median()),
                "signed_ttft": float(t.median()), "signed_tpot": float(p.median())}  # fmt: skip

    every, known = stats(res), stats(res[res["as_run"]])
    return {
        "median_abs_ttft_err": every["ttft"],
        "median_abs_tpot_err": every["tpot"],
        "signed_median": {"ttft": every["signed_ttft"], "tpot": every["signed_tpot"]},
        "as_run": {
            "rows": known["n"],
            "median_abs_ttft_err": known["ttft"],
            "median_abs_tpot_err": known["tpot"],
            "signed_median": {"ttft": known["signed_ttft"], "tpot": known["signed_tpot"]},
        },
        "by_deployment": {str(k): stats(g) for k, g in res.groupby("deployment")},
    }


# --- extraction from a local git mirror of SemiAnalysisAI/InferenceX (run once; the table is committed) ---------


def _git(gitdir: str, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={gitdir}", *args], capture_output=True, text=True, check=True).stdout


def concs(s: dict[str, Any]) -> list[int]:
    """A search-space item's concurrencies: `conc-list`, or `conc-start` doubling up to `conc-end` (CONFIGS.md)."""
    if s.get("conc-list"):
        return sorted({int(c) for c in s["conc-list"]})
    lo, hi = int(s["conc-start"]), int(s["conc-end"])
    return [lo * 2**k for k in range(24) if lo * 2**k <= hi]


def _items_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, e in (config or {}).items():
        parts = str(name).split("-")
        fw, model = FRAMEWORKS.get(str(e.get("framework"))), MODELS.get(parts[0])
        if not isinstance(e, dict) or not e.get("disagg") or fw is None or model is None or len(parts) < 3:
            continue
        for slc in e.get("seq-len-configs", []):
            for s in slc.get("search-space", []):
                pools = [[int(s[p]["num-worker"]), int(s[p]["tp"]), int(s[p].get("ep", 1)), bool(s[p].get("dp-attn"))]
                         for p in ("prefill", "decode")]  # fmt: skip
                files = [x for p in ("prefill", "decode") for x in s[p].get("additional-settings") or []]
                out.append({
                    "entry": name, "model": model, "gpu": GPUS.get(parts[2], parts[2]), "backend": fw,
                    "precision": e.get("precision"), "image": e.get("image"), "isl": slc["isl"], "osl": slc["osl"],
                    "spec": s.get("spec-decoding", "none"), "conc": concs(s), "prefill": pools[0],
                    "decode": pools[1], "settings": [str(x) for x in files],
                })  # fmt: skip
    return out


def item_history(
    gitdir: str, until: str, items_of: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """The first-parent commits of `CONFIG_PATH` up to `until` (oldest first) and every item `items_of` reads from
    them, each with the commit ranges in which it was present (the disagg and the agg tables share this walk)."""
    import yaml

    log = _git(gitdir, "log", "--first-parent", "--format=%H %cI", f"--until={until}", "HEAD", "--", CONFIG_PATH)
    commits = [line.split() for line in log.splitlines()][::-1]
    items: dict[str, dict[str, Any]] = {}
    for i, (h, _) in enumerate(commits):
        for it in items_of(yaml.safe_load(_git(gitdir, "show", f"{h}:{CONFIG_PATH}"))):
            rec = items.setdefault(json.dumps(it, sort_keys=True), {**it, "present": []})
            if rec["present"] and rec["present"][-1][1] == i - 1:
                rec["present"][-1][1] = i
            else:
                rec["present"].append([i, i])
    return commits, list(items.values())


def extract(gitdir: str, until: str = UNTIL) -> dict[str, Any]:
    """Every disagg search-space item of `CONFIG_PATH` over the first-parent history of HEAD up to `until`, with
    the commit ranges in which it was present."""
    commits, items = item_history(gitdir, until, _items_of)
    return {
        "source": f"SemiAnalysisAI/InferenceX {CONFIG_PATH}, first-parent history of main to {until}",
        "commits": commits,
        "items": items,
    }


def _write(data: dict[str, Any], path: Path) -> None:
    """One item per line, so diffs of a re-extraction stay readable."""
    head = {k: v for k, v in data.items() if k != "items"}
    lines = [json.dumps(it, sort_keys=True) for it in data["items"]]
    body = json.dumps(head, indent=1)[:-2] + ',\n "items": [\n' + ",\n".join(lines) + "\n ]\n}\n"
    path.write_text(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", metavar="GITDIR", required=True, help="bare git dir of SemiAnalysisAI/InferenceX")
    ap.add_argument("--out", type=Path, default=TABLE)
    args = ap.parse_args()
    _write(extract(args.extract), args.out)


if __name__ == "__main__":
    main()

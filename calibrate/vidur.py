"""Import Vidur-format profiling CSVs (MIT, microsoft/vidur `data/profiling/`) into servesim tables.

Vidur keeps min/max/mean/median/std per operator per row, many duplicate rows and one file per model;
servesim keeps one compact directory per GPU with the medians only (see `hwprofiles.tables`). Model
directories are named by their Hugging Face id and mapped to catalogue names through `hf_id`.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from hwprofiles.tables import COLLECTIVE_COLS, SHAPE_COLS, TOKEN_OPS, MeasuredTables, write_tables

# Vidur's GPU folder names -> catalogue names (its A100 profiles are 80 GB SXM, H100 SXM).
GPU_MAP = {"a100": "a100-80g", "h100": "h100-sxm", "a40": "a40", "l40s": "l40s", "h200": "h200"}
ATTRIBUTION = (
    "Operator and collective timings from the Vidur project (microsoft/vidur, data/profiling/), "
    "MIT License, Copyright (c) Microsoft Corporation; converted to medians by servesim."
)


def _catalogue_name(hf_id: str) -> str:
    """Catalogue model name whose `hf_id` is `org/name`, else the lower-cased folder name."""
    from hwprofiles import catalog

    for n in catalog.model_names():
        if catalog.model(n).hf_id.lower() == hf_id.lower():
            return n
    return hf_id.split("/")[-1].lower()


def read_compute(csv: Path, model: str) -> pd.DataFrame:
    """One Vidur `mlp.csv` as compact rows: model, shape, tp, num_tokens, median ms per operator."""
    d = pd.read_csv(csv)
    keys = [*SHAPE_COLS, "num_tokens", "num_tensor_parallel_workers"]
    missing = [k for k in keys if k not in d]
    if missing:
        from sim.errors import ServesimError

        raise ServesimError(f"{csv}: not a Vidur compute table (missing {', '.join(missing)})")
    med = {op: f"time_stats.{op}.median" for op in TOKEN_OPS if f"time_stats.{op}.median" in d}
    g = d.groupby(keys)[list(med.values())].median().reset_index()
    g = g.rename(columns={v: k for k, v in med.items()} | {"num_tensor_parallel_workers": "tp"})
    g.insert(0, "model", model)
    g["use_gated_mlp"] = g["use_gated_mlp"].map(lambda v: str(v).strip().lower() in ("1", "true"))
    return g.sort_values(["tp", "num_tokens"]).reset_index(drop=True)


def read_network(csv: Path) -> pd.DataFrame:
    """One Vidur collective table (all_reduce.csv / send_recv.csv) as median ms per size and placement."""
    d = pd.read_csv(csv)
    name = str(d["collective"].iloc[0]) if "collective" in d else csv.stem
    col = f"time_stats.{name}.median"
    g = d.groupby(["num_workers", "devices_per_node", "size"])[col].median().reset_index()
    g = g.rename(columns={"size": "size_bytes", col: "time_ms"})
    g.insert(0, "collective", name)
    return g[list(COLLECTIVE_COLS)]


def import_vidur(
    src: str | Path,
    dest: str | Path,
    gpu_map: dict[str, str] | None = None,
    network_setup: str = "dgx",
) -> dict[str, Path]:
    """Convert `src/compute/<gpu>/<org>/<model>/mlp.csv` and `src/network/<gpu>_<setup>/*.csv`.

    Writes `dest/<catalogue gpu>/` per GPU and copies a LICENSE file found in `src`; returns gpu -> dir.
    """
    src, dest = Path(src), Path(dest)
    gmap = {**GPU_MAP, **(gpu_map or {})}
    compute: dict[str, list[pd.DataFrame]] = {}
    sources: dict[str, list[str]] = {}
    for csv in sorted(src.glob("compute/*/*/*/mlp.csv")):
        vgpu, org, name = csv.parts[-4], csv.parts[-3], csv.parts[-2]
        gpu = gmap.get(vgpu, vgpu)
        compute.setdefault(gpu, []).append(read_compute(csv, _catalogue_name(f"{org}/{name}")))
        sources.setdefault(gpu, []).append(f"{org}/{name}")
    network: dict[str, list[pd.DataFrame]] = {}
    for csv in sorted(src.glob(f"network/*_{network_setup}/*.csv")):
        vgpu = csv.parent.name.rsplit("_" + network_setup, 1)[0]
        network.setdefault(gmap.get(vgpu, vgpu), []).append(read_network(csv))
    if not compute and not network:
        from sim.errors import ServesimError

        raise ServesimError(f"{src}: no Vidur tables found (expected compute/<gpu>/<org>/<model>/mlp.csv)")
    licenses = sorted(src.glob("LICENSE*"))
    out: dict[str, Path] = {}
    for gpu in sorted(set(compute) | set(network)):
        ops = pd.concat(compute[gpu], ignore_index=True) if gpu in compute else pd.DataFrame()
        nets = pd.concat(network[gpu], ignore_index=True) if gpu in network else pd.DataFrame()
        if not nets.empty:
            nets = nets[nets["devices_per_node"] >= np.minimum(nets["num_workers"], 8)].reset_index(drop=True)
        prov = {
            "device": gpu,
            "source": "vidur",
            "attribution": ATTRIBUTION,
            "license": licenses[0].name if licenses else "MIT (microsoft/vidur)",
            "engine": "Sarathi-Serve kernels as profiled by Vidur (bf16/fp16)",
            "dtype_bytes": 2,
            "models": sorted(set(sources.get(gpu, []))),
            "network_setup": network_setup,
            "imported": _dt.date.today().isoformat(),
            "units": "milliseconds per layer per operator (emb and lm_head per iteration)",
        }
        out[gpu] = write_tables(MeasuredTables(ops, pd.DataFrame(), nets, prov), dest / gpu)
    for lic in licenses:
        shutil.copy(lic, dest / lic.name)
    return out

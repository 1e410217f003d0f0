"""Sweep files: a base scenario, a `grid` and/or `zip` over dotted paths, and replications.

Expanding a sweep yields one `Point` per grid cell × zip row × replication, each with a validated
scenario, so a typo in any point fails with the sweep file's line before the first simulation starts.
Replication seeds come from `numpy.random.SeedSequence(root).spawn(replications)` and are shared by all
points (common random numbers), so differences between points are not sampling noise.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwprofiles.hfconfig import is_config_path
from sim.config.limits import check_name
from sim.config.scenario import Scenario, validate_scenario
from sim.config.specfiles import names_a_file, resolve_spec_files
from sim.config.yamlio import Positions, format_validation_error, graft, load_yaml, locate, set_value
from sim.errors import ServesimError
from sim.output.result import VERSION
from sim.workload.traces import trace_names

# points x replications a sweep may make: each is a simulation (seconds to minutes), so more is a typo or a
# sweep to split; the bound keeps the expansion (one validated scenario per point) to seconds.
MAX_SWEEP_RUNS = 10_000


class SweepSpec(BaseModel):
    """The sweep file's schema."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, description="default: the sweep file's stem")
    base: str | dict[str, Any] = Field(description="scenario YAML (relative to the sweep file) or inline scenario")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="every combination of these values")
    zip_: dict[str, list[Any]] = Field(default_factory=dict, alias="zip", description="values taken row by row")
    replications: int = Field(default=1, ge=1, le=MAX_SWEEP_RUNS, description="runs per point, each with its own seed")
    seed: int | None = Field(default=None, ge=0, description="root of replication seeds; default the base seed")
    save_requests: bool = Field(default=True, description="keep requests.parquet in each point's run directory")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v)

    @field_validator("grid", "zip_")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not key or any(not part for part in key.split(".")):
                raise ValueError(f"{key!r}: expected a dotted path such as cluster.instances")
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return v

    @model_validator(mode="after")
    def _zip_lengths(self) -> SweepSpec:
        lengths = {k: len(v) for k, v in self.zip_.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip lists must have equal lengths; found {lengths}")
        both = set(self.grid) & set(self.zip_)
        if both:
            raise ValueError(f"{sorted(both)} in both grid and zip; put each path in one")
        return self


@dataclass(frozen=True)
class Point:
    """One simulation of a sweep: its parameters, replication, seed and validated scenario."""

    index: int  # grid cell × zip row, 0-based, shared by its replications
    replication: int
    params: dict[str, Any]
    scenario: Scenario

    @property
    def seed(self) -> int:
        return self.scenario.seed

    @property
    def key(self) -> str:
        return scenario_hash(self.scenario)


def scenario_hash(sc: Scenario) -> str:
    """Content hash of a resolved scenario: canonical JSON of its dump + servesim version + base dir + the
    bytes of the files it reads (traces, profiles, measured tables), so an edited trace is not served stale."""
    payload = {
        "scenario": sc.model_dump(mode="json"),
        "version": VERSION,
        "base_dir": str(sc.base_dir),
        "inputs": input_digests(sc),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime in the key: an edit re-hashes
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def file_digest(p: Path) -> str:
    """sha256 of a file's bytes (of every file under a directory), cached on (path, size, mtime)."""
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    parts = []
    for f in files:
        st = f.stat()
        parts.append(
            f"{f.relative_to(p) if p.is_dir() else ''}:{_digest(str(f.resolve()), st.st_size, st.st_mtime_ns)}"
        )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def input_digests(sc: Scenario) -> dict[str, str]:
    """Digest of each file a scenario reads: trace files (arrivals, lengths), a model's config.json (made
    absolute at load; spec YAML files are read into the scenario itself), cost-model profile and tables."""
    from sim.workload.traces import scenario_trace_path as _resolve

    paths: list[Path] = []
    for sec in (sc.workload.arrival, sc.workload.lengths):
        path = getattr(sec, "path", None)
        if getattr(sec, "kind", None) == "trace" and isinstance(path, str):
            try:
                paths.append(_resolve(path, sc.base_dir))
            except ServesimError:
                continue  # the run reports it
    models = [sc.model, getattr(sc.speculative, "draft_model", None)]
    paths += [Path(m) for m in models if isinstance(m, str) and is_config_path(m) and Path(m).is_file()]
    for attr in ("profile", "tables"):
        v = getattr(sc.cost_model, attr, None)
        if isinstance(v, str) and v:
            p = Path(v) if Path(v).is_absolute() else sc.base_dir / v
            if p.exists():
                paths.append(p)
    out = {}
    for p in paths:
        try:
            out[str(p.resolve())] = file_digest(p)
        except OSError:
            continue
    return out


def replication_seeds(root: int, replications: int) -> list[int]:
    """Independent 32-bit seeds for each replication, spawned from one root."""
    children = np.random.SeedSequence(root).spawn(replications)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


def absolute_trace_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Rewrite relative trace paths to absolute ones, so a point runs the same in any worker's cwd."""
    wl = data.get("workload")
    if not isinstance(wl, dict):
        return data
    shipped = trace_names()
    for section in ("arrival", "lengths"):
        spec = wl.get(section)
        if not isinstance(spec, dict):
            continue
        path = spec.get("path")
        if isinstance(path, str) and path not in shipped and not Path(path).is_absolute():
            cand = base_dir / path
            if cand.exists():
                spec["path"] = str(cand.resolve())
    return data


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass
class Sweep:
    """A loaded sweep: its spec, where it came from, and its expanded points."""

    spec: SweepSpec
    name: str
    source: str
    points: list[Point]

    @property
    def param_names(self) -> list[str]:
        return [*self.spec.grid, *self.spec.zip_]


def _shift(pos: Positions, prefix: tuple[str | int, ...]) -> Positions:
    out = Positions()
    for loc, lc in pos.items():
        if loc[: len(prefix)] == prefix:
            out[loc[len(prefix) :]] = lc
    return out


def _swept_positions(
    base_pos: Positions | None, pos: Positions, src: str, where: dict[str, tuple[str, str, int]]
) -> Positions:
    """The base scenario's positions with each swept path's value (and everything under it) taken from the
    sweep file, so a bad swept value is named at the sweep file's line:col and the rest at the base's."""
    merged = Positions(base_pos or {})
    for key, (table, k, j) in where.items():
        merged = graft(merged, tuple(key.split(".")), _shift(pos, (table, k, j)), src)
    return merged


def _sweep_relative_files(data: dict[str, Any], params: dict[str, Any], here: Path) -> dict[str, Any]:
    """A swept model/GPU spec file or config.json path is relative to the sweep file's folder (where it was
    written), not the base scenario's: make it absolute."""
    for key, value in params.items():
        parts = key.split(".")
        if parts[-1] not in ("model", "draft_model", "hardware") or not names_a_file(value, "model"):
            continue
        if Path(value.strip()).expanduser().is_absolute():
            continue
        node: Any = data
        for k in parts[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[parts[-1]] = str(here / value.strip())
    return data


def _check_size(spec: SweepSpec, src: str, pos: Positions) -> None:
    """grid cells x zip rows x replications within MAX_SWEEP_RUNS, named at the key that makes it too many."""
    cells = math.prod(len(v) for v in spec.grid.values())
    rows = len(next(iter(spec.zip_.values()))) if spec.zip_ else 1
    runs = cells * rows * spec.replications
    if runs <= MAX_SWEEP_RUNS:
        return
    sizes = {"grid": cells, "zip": rows, "replications": spec.replications}
    key = max(sizes, key=lambda k: sizes[k])
    raise ServesimError(
        f"{locate((key,), src, pos)}: {key}: {cells:,} grid cells x {rows:,} zip rows x {spec.replications:,} "
        f"replications = {runs:,} runs, more than the {MAX_SWEEP_RUNS:,} a sweep may make; split the sweep"
    )


def load_sweep(source: str | Path | dict[str, Any]) -> Sweep:
    """Parse, validate and expand a sweep file (or dict) into validated points."""
    if isinstance(source, dict):
        raw, pos, src, here = source, Positions(), "<sweep>", Path.cwd()
    else:
        raw, pos = load_yaml(source)
        src, here = str(source), Path(source).resolve().parent
        if not isinstance(raw, dict):
            raise ServesimError(f"{src}:1:1: expected a mapping with base, grid/zip, replications")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise ServesimError(format_validation_error(e, src, pos)) from None
    _check_size(spec, src, pos)
    if isinstance(spec.base, str):
        base_path = Path(spec.base) if Path(spec.base).is_absolute() else Path(src).parent / spec.base
        base_path = Path(os.path.normpath(base_path))
        base_data, base_pos = load_yaml(base_path)
        if not isinstance(base_data, dict):
            raise ServesimError(f"{base_path}:1:1: expected a mapping of scenario keys")
        base_dir, base_label = base_path.resolve().parent, str(base_path)
    else:
        base_data, base_pos, base_dir, base_label = spec.base, _shift(pos, ("base",)), here, src
    base_data, resolved = resolve_spec_files(base_data, base_label, base_pos, base_dir)  # read once, not per point
    base_pos = resolved if resolved is not None else base_pos
    name = spec.name or (Path(src).stem if src != "<sweep>" else "sweep")
    grid_idx = list(itertools.product(*(range(len(v)) for v in spec.grid.values())))
    zip_len = len(next(iter(spec.zip_.values()))) if spec.zip_ else 1
    points: list[Point] = []
    for i, (g, z) in enumerate(itertools.product(grid_idx, range(zip_len))):
        params: dict[str, Any] = {}
        where: dict[str, tuple[str, str, int]] = {}
        for k, j in zip(spec.grid, g, strict=True):
            params[k], where[k] = spec.grid[k][j], ("grid", k, j)
        for k in spec.zip_:
            params[k], where[k] = spec.zip_[k][z], ("zip", k, z)
        data = copy.deepcopy(base_data)
        for k, (table, _, _) in where.items():  # values as the sweep file has them (no JSON/YAML round trip)
            set_value(data, k, copy.deepcopy(params[k]), f"{locate((table, k), src, pos)}:")
        data = _sweep_relative_files(absolute_trace_paths(data, base_dir), params, here)
        try:  # schema, non-finite numbers and bounds; a point that does not fit fails alone, at run time
            sc = validate_scenario(data, base_label, _swept_positions(base_pos, pos, src, where), base_dir, False)
        except ServesimError as e:
            shown = ", ".join(f"{k}={_label(v)}" for k, v in params.items())
            raise ServesimError(f"{e} (sweep point {i}: {shown})") from None
        seeds = (
            [sc.seed]
            if spec.replications == 1 and spec.seed is None
            else replication_seeds(sc.seed if spec.seed is None else spec.seed, spec.replications)
        )
        for r, seed in enumerate(seeds):
            rep = sc.model_copy(update={"seed": seed}, deep=True)
            rep._base_dir = base_dir
            points.append(Point(i, r, params, rep))
    return Sweep(spec, name, src, points)


def short_labels(values: list[Any]) -> dict[str, str]:
    """Readable labels for swept values: mappings show only the keys that differ between values."""
    texts = [_label(v) for v in values]
    maps = [v for v in values if isinstance(v, dict)]
    if len(maps) != len(values) or not maps:
        return {t: t for t in texts}
    keys = list(dict.fromkeys(k for m in maps for k in m))
    varying = [k for k in keys if len({json.dumps(m.get(k), sort_keys=True) for m in maps}) > 1] or keys
    if "kind" in varying and len({json.dumps(m.get("kind")) for m in maps}) == len(maps):
        varying = ["kind"]  # the kind alone tells them apart
    return {
        t: " ".join(f"{k}={m[k]}" if k != "kind" else str(m[k]) for k in varying if k in m)
        for t, m in zip(texts, maps, strict=True)
    }

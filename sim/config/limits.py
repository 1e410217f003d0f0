"""Bounds every scenario must respect, so a run is finite: no non-finite numbers, no absurd sizes, and the
physics checks pydantic cannot express field by field (tp against the model's heads, the model fitting the
GPU, a trace file that exists, a bounded number of timeline and migration ticks).

Each check returns the path of the offending key so the caller can name file:line:col.
"""

from __future__ import annotations

import math
import stat
import unicodedata
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from sim.errors import ServesimError

if TYPE_CHECKING:
    from sim.config.scenario import Scenario

Loc = tuple[str | int, ...]
MAX_REQUESTS = 10_000_000  # a run keeps every request in memory (~1 KiB each)
MAX_SECONDS = 1e7  # simulated seconds (about 116 days)
MAX_RATE = 1e6  # requests per second
MAX_TOKENS = 10_000_000  # one prompt or output
MAX_INSTANCES = 100_000
MAX_TP = 64  # one NVLink domain; larger groups are not tensor parallel in practice
MAX_TICKS = 1_000_000  # periodic timeline samples or migration decisions in one run
MAX_NAME = 120
# No quantity in a scenario is larger (the biggest are FLOP/s, <= 1e18, and seeds, < 2**63): beyond it is a
# unit or exponent typo. The one exception is a period meant as "never" (a huge timeline_interval_s).
MAX_MAGNITUDE = 1e20
_NEVER_PERIODS: frozenset[Loc] = frozenset({("engine", "timeline_interval_s")})

# inline GPU: (low, high) of each rate/size; outside is a typo (units!) rather than a GPU
_GPU_RANGES = {
    "memory_bytes": (1, 1e15),
    "bf16_flops": (1e9, 1e18),
    "fp8_flops": (1e9, 1e18),
    "mem_bw": (1e6, 1e15),
    "intra_node_bw": (1e6, 1e15),
    "host_link_bw": (1e6, 1e15),
    "price_per_hour": (0, 1e4),
    "tdp_w": (1, 1e5),
}
_MODEL_MAX = {
    "num_layers": 10_000,
    "hidden_size": 1_000_000,
    "num_heads": 100_000,
    "num_kv_heads": 100_000,
    "head_dim": 100_000,
    "intermediate_size": 10_000_000,
    "vocab_size": 100_000_000,
    "max_context": 100_000_000,
    "num_experts": 100_000,
    "dtype_bytes": 8,
}


def check_name(v: str) -> str:
    """A run or sweep name becomes a folder under runs/: it must be one plain path component."""
    if not v or len(v) > MAX_NAME:
        raise ValueError(f"expected a plain name of 1 to {MAX_NAME} characters")
    bad = [c for c in v if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") or c in "/\\:"]
    if bad or v in (".", "..") or PurePosixPath(v).is_absolute() or PureWindowsPath(v).is_absolute():
        raise ValueError("expected a plain name (no '/', '\\', ':', control or format characters, '.' or '..')")
    return v


def _first(data: Any, hit: Callable[[Loc, Any], bool]) -> tuple[Loc, Any] | None:
    """Path and value of the first leaf or node of plain data (depth first, in key order) that `hit` accepts."""
    stack: list[tuple[Loc, Any]] = [((), data)]
    while stack:
        loc, v = stack.pop()
        if hit(loc, v):
            return loc, v
        if isinstance(v, dict):
            stack.extend(((*loc, k), x) for k, x in reversed(list(v.items())))
        elif isinstance(v, list | tuple):
            stack.extend(((*loc, i), x) for i, x in reversed(list(enumerate(v))))
    return None


def first_non_finite(data: Any) -> tuple[Loc, float] | None:
    """Path and value of the first inf/nan anywhere in plain data (a float the schema would reject, or a
    string pydantic would parse as inf): such a run never ends or ends in NaN."""
    return _first(data, lambda _, v: isinstance(v, float) and not math.isfinite(v))


def first_huge(data: Any) -> tuple[Loc, float] | None:
    """Path and value of the first number anywhere in plain data whose magnitude exceeds MAX_MAGNITUDE (a
    threshold of 1e300, a sigma of 1e300: overflow, or a run that never ends), kind sections included."""

    def huge(loc: Loc, v: Any) -> bool:
        big = isinstance(v, int | float) and not isinstance(v, bool) and abs(v) > MAX_MAGNITUDE
        return big and loc not in _NEVER_PERIODS

    return _first(data, huge)


def first_bool_as_number(raw: Any, validated: Any) -> tuple[Loc, bool] | None:
    """Path of the first YAML boolean the schema took as a number (pydantic reads `true` as 1 for a float
    field or a policy's int knob): `rate: true` is a mistake, not 1 request/s."""
    stack: list[tuple[Loc, Any, Any]] = [((), raw, validated)]
    while stack:
        loc, r, m = stack.pop()
        if isinstance(r, bool):
            if isinstance(m, int | float) and not isinstance(m, bool):
                return loc, r
        elif isinstance(r, dict):
            for k, x in reversed(list(r.items())):
                child = m.get(k) if isinstance(m, dict) else getattr(m, str(k), None)
                stack.append(((*loc, k), x, child))
        elif isinstance(r, list) and isinstance(m, list | tuple) and len(m) == len(r):
            stack.extend(((*loc, i), x, y) for i, (x, y) in reversed(list(enumerate(zip(r, m, strict=True)))))
    return None


def _hardware_problem(hw: Any, loc: Loc) -> tuple[Loc, str] | None:
    if isinstance(hw, str) or hw is None:
        return None
    for field, (lo, hi) in _GPU_RANGES.items():
        v = getattr(hw, field, None)
        if v is not None and not lo <= v <= hi:
            return (*loc, field), f"expected between {lo:g} and {hi:g} (SI units), found {v:g}"
    return None


def _model_problem(sc: Scenario) -> tuple[Loc, str] | None:
    if isinstance(sc.model, str):
        return None
    m = sc.model
    for field, hi in _MODEL_MAX.items():
        v = getattr(m, field)
        if v > hi:
            return ("model", field), f"expected at most {hi:,}, found {v:,}"
    if m.experts_per_token > m.num_experts:
        return (
            "model",
            "experts_per_token",
        ), f"expected at most num_experts ({m.num_experts}), found {m.experts_per_token}"
    if m.num_heads % m.num_kv_heads:
        return ("model", "num_kv_heads"), f"must divide num_heads ({m.num_heads}), found {m.num_kv_heads}"
    return None


def _tp_problem(sc: Scenario, tp: int, loc: Loc) -> str | None:
    m = sc.model_spec
    if m.num_heads % tp:
        ok = [d for d in range(1, min(m.num_heads, MAX_TP) + 1) if m.num_heads % d == 0]
        return f"tp {tp} must divide {m.name}'s {m.num_heads} attention heads; try one of {ok}"
    if m.num_kv_heads % tp and tp % m.num_kv_heads:
        return (
            f"tp {tp} and {m.name}'s {m.num_kv_heads} KV heads: one must divide the other "
            "(KV heads are split across GPUs, or replicated when there are fewer than GPUs)"
        )
    return None


def tp_problem(sc: Scenario) -> str | None:
    """Why the cluster's tensor-parallel degree cannot split the model, or None."""
    for tp, _, loc in _groups(sc):
        msg = _tp_problem(sc, tp, loc)
        if msg:
            return msg
    return None


def _groups(sc: Scenario) -> list[tuple[int, Any, Loc]]:
    """(tp, GPU spec, path of the key that sets tp) for each instance group of the cluster."""
    c = sc.cluster
    here: Loc = ("cluster", "tp")
    if c.prefill is None or c.decode is None:
        return [(c.tp, sc.gpu_spec, here)]
    from hwprofiles import catalog

    out: list[tuple[int, Any, Loc]] = []
    for role, pool in (("prefill", c.prefill), ("decode", c.decode)):
        hw = pool.hardware
        gpu = sc.gpu_spec if hw is None else (catalog.gpu(hw) if isinstance(hw, str) else hw)
        out.append((pool.tp, gpu, ("cluster", role, "tp")))
    return out


def _fit_problem(sc: Scenario) -> tuple[Loc, str] | None:
    """tp against the heads, then the model fitting each group's GPUs (the engine's own capacity function)."""
    from sim.cluster import pools
    from sim.core.kvcache import kv_capacity
    from sim.costmodel.kv_memory import reserve_bytes

    for tp, _gpu, loc in _groups(sc):
        msg = _tp_problem(sc, tp, loc)
        if msg:
            return loc, msg
    c, kv = sc.cluster, sc.kv_cache
    loc = ("cluster", "tp")
    try:
        if c.prefill is None or c.decode is None:
            pools.capacity(sc)
            return None
        for tp, gpu, loc in _groups(sc):
            pool = c.prefill if loc[1] == "prefill" else c.decode
            assert pool is not None
            sched = pool.scheduler or sc.scheduler
            util = kv.gpu_memory_utilization
            reserve = reserve_bytes(kv.reserve_gb, sc.model_spec, gpu, tp, sched, sc.serving_engine, util)
            reserve += pools._draft_weights(sc, tp)
            kv_capacity(sc.model_spec, gpu, tp, kv.block_size, util, reserve, pool.pp)
    except ServesimError as e:
        return loc, str(e)
    return None


# a key named by a check may be a default the file never wrote: then point at the key that chose it
_FALLBACK: dict[Loc, Loc] = {
    ("cluster", "tp"): ("hardware",),
    ("cluster", "prefill", "tp"): ("cluster", "prefill"),
    ("cluster", "decode", "tp"): ("cluster", "decode"),
}


def fallback(loc: Loc) -> Loc:
    return _FALLBACK.get(loc, loc)


def file_kind(p: Path) -> str:
    """What a path that exists names, in words, for errors that say what was found instead of a file."""
    mode = p.stat().st_mode
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kinds |= {stat.S_ISFIFO: "a pipe", stat.S_ISSOCK: "a socket", stat.S_ISREG: "a regular file"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _trace_problem(sc: Scenario) -> tuple[Loc, str] | None:
    from sim.workload.traces import scenario_trace_path as _resolve

    wl = sc.workload
    for key, sec in (("arrival", wl.arrival), ("lengths", wl.lengths)):
        path = getattr(sec, "path", None)
        if getattr(sec, "kind", None) == "trace" and isinstance(path, str):
            try:
                p = _resolve(path, sc.base_dir)
            except ServesimError as e:
                return ("workload", key, "path"), str(e)
            if p.is_dir():
                return ("workload", key, "path"), f"{p} is a directory, expected a trace file"

    return None


def _device_problem(sc: Scenario) -> tuple[Loc, str] | None:
    """A trace path naming a device or a pipe (/dev/zero, a FIFO) would be read forever: always an error, for
    sweeps and the planner too (unlike a missing file, which only fails its own run)."""
    from sim.workload.traces import scenario_trace_path as _resolve

    wl = sc.workload
    for key, sec in (("arrival", wl.arrival), ("lengths", wl.lengths)):
        path = getattr(sec, "path", None)
        if getattr(sec, "kind", None) != "trace" or not isinstance(path, str):
            continue
        try:
            p = _resolve(path, sc.base_dir)
        except ServesimError:
            continue
        if p.exists() and not p.is_file() and not p.is_dir():
            return ("workload", key, "path"), f"{p} is not a regular file ({file_kind(p)}), expected a trace file"
    return None


def _tick_problem(sc: Scenario) -> tuple[Loc, str] | None:
    span = sc.engine.horizon_s or sc.workload.duration_s
    periodic: list[tuple[Loc, float | None]] = [(("engine", "timeline_interval_s"), sc.engine.timeline_interval_s)]
    mig = sc.cluster.migration
    if mig is not None:
        periodic.append((("cluster", "migration", "interval_s"), getattr(mig, "interval_s", None)))
    for loc, dt in periodic:
        if dt is None:
            continue
        if dt < 1e-4:
            return loc, f"expected at least 0.0001 s, found {dt:g}"
        if span is not None and span / dt > MAX_TICKS:
            return loc, f"{span:g} s / {dt:g} s = {span / dt:.3g} ticks, more than {MAX_TICKS:,}; use a longer period"
    return None


def _cost_problem(sc: Scenario) -> tuple[Loc, str] | None:
    for field, v in sc.cost_model.model_dump().items():
        if field.endswith("_s") and isinstance(v, int | float) and not isinstance(v, bool) and v > 3600:
            return ("cost_model", field), f"expected at most 3600 s per iteration, found {v:g}"
    return None


def physical_problem(sc: Scenario, feasibility: bool = True) -> tuple[Loc, str] | None:
    """The first physics problem of a schema-valid scenario, as (path of the key, message). Bounds that keep
    a run finite always apply; `feasibility` (tp vs heads, the model fitting, the trace existing) is for
    scenarios a person wrote: the planner builds candidates that do not fit on purpose, to prune them."""
    for hw, loc in [(sc.hardware, ("hardware",))] + [
        (getattr(p, "hardware", None), ("cluster", role, "hardware"))
        for role, p in (("prefill", sc.cluster.prefill), ("decode", sc.cluster.decode))
        if p is not None
    ]:
        prob = _hardware_problem(hw, loc)
        if prob:
            return prob
    checks = [_model_problem, _device_problem, _tick_problem, _cost_problem]
    checks += [_fit_problem, _trace_problem] if feasibility else []
    for check in checks:
        prob = check(sc)
        if prob:
            return prob
    return None

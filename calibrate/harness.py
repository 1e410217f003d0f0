"""Microbenchmarks that measure a model's operators on this machine into a `hwprofiles.tables` directory.

What is timed (see `calibrate.kernels`, the same functions the CPU real run serves with): every per-layer
token operator and the LM head over a sweep of token counts; attention prefill per sequence over a grid
of (new tokens q, cached tokens c); decode attention over `batch` sequences of a given context; host <->
device copies; all-reduce when several GPUs are visible (or when asked, over gloo on CPU). Each point:
warm-up calls, then repeated samples timed with CUDA events on a GPU and `perf_counter` on the CPU; the
tables keep the median, `spread.csv` keeps p10/p90 and the sample count, `provenance.yaml` the device,
driver, library versions and date, and `device.yaml` a GPUSpec estimated from the best achieved rates
(so an inline `hardware:` for a machine without a catalogue entry is one file away).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from calibrate import kernels as K
from hwprofiles.specs import ModelSpec
from hwprofiles.tables import MeasuredTables, shape_of, write_tables

TOKENS_FULL = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
PREFILL_Q = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
PREFILL_C = (0, 128, 512, 2048)
DECODE_B = (1, 2, 4, 8, 16, 32, 64, 128)
DECODE_CTX = (16, 64, 256, 1024, 4096)


@dataclass
class Plan:
    """What to measure and how hard; `tiny()` is the CI-sized version (a few seconds on a CPU)."""

    max_tokens: int = 2048
    max_batch: int = 64
    max_context: int = 2048
    warmup: int = 3
    reps: int = 15
    min_sample_s: float = 2e-4  # calls shorter than this are looped inside one sample
    copies: bool = True
    collective_workers: int = 0  # 0: all GPUs when >= 2 are visible; on CPU only when asked
    clock: str = "thread"  # CPU only: the thread's CPU time (immune to neighbours time-sharing cores), or wall
    tokens: tuple[int, ...] = field(default=TOKENS_FULL)

    @classmethod
    def tiny(cls) -> Plan:
        return cls(max_tokens=32, max_batch=4, max_context=64, warmup=1, reps=3, min_sample_s=0.0)

    def token_grid(self) -> list[int]:
        g = [t for t in self.tokens if t <= self.max_tokens]
        return g if g and g[-1] == self.max_tokens else [*g, self.max_tokens]


@dataclass
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    n: int


class Timer:
    """Median of repeated samples: CUDA events on a GPU (after warm-up), `perf_counter` on the CPU."""

    def __init__(self, torch: Any, device: str, plan: Plan) -> None:
        self.torch, self.cuda, self.plan = torch, device.startswith("cuda"), plan

    def __call__(self, fn: Callable[[], Any]) -> Timing:
        torch, plan = self.torch, self.plan
        for _ in range(plan.warmup):
            fn()
        inner = 1
        if plan.min_sample_s > 0:  # loop tiny calls so timer resolution and call noise do not dominate
            t = self._once(fn, 1)
            inner = max(1, min(64, int(plan.min_sample_s / max(t, 1e-9))))
        samples, clean = [], []
        for _ in range(plan.reps):
            before = preemptions()
            t = self._once(fn, inner) / inner
            samples.append(t)
            if preemptions() == before:
                clean.append(t)
        if len(clean) * 2 >= len(samples):  # a neighbour preempted some samples: keep the undisturbed ones
            samples = clean
        q = np.quantile(samples, [0.1, 0.9])
        del torch
        return Timing(statistics.median(samples), float(q[0]), float(q[1]), len(samples))

    def _once(self, fn: Callable[[], Any], inner: int) -> float:
        torch = self.torch
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) * 1e-3
        clock = time.thread_time if self.plan.clock == "thread" else time.perf_counter
        t0 = clock()
        for _ in range(inner):
            fn()
        return clock() - t0


def preemptions() -> int:
    """Involuntary context switches of this thread so far (0 where the OS does not say): a sample during
    which another process took the core is disturbed (cache lost) even on the thread's CPU clock."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw)
    except (ImportError, AttributeError, OSError):
        return 0


# -- provenance ---------------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(torch: Any, device: str, dtype: str, model: ModelSpec, tp: int, plan: Plan) -> dict[str, Any]:
    """Where and how the tables were measured: enough to tell two tables apart a year later."""
    cuda = device.startswith("cuda")
    return {
        "device": torch.cuda.get_device_name(torch.device(device)) if cuda else _cpu_name(),
        "device_kind": "cuda" if cuda else "cpu",
        "driver": _nvidia_driver() if cuda else platform.release(),
        "torch": str(torch.__version__),
        "cuda": str(torch.version.cuda) if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "threads": None if cuda else torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "source": "servesim calibrate measure",
        "dtype": dtype,
        "dtype_bytes": {"fp32": 4, "bf16": 2, "fp16": 2}[dtype],
        "model": model.name,
        "tp": tp,
        "plan": {
            "max_tokens": plan.max_tokens,
            "max_batch": plan.max_batch,
            "max_context": plan.max_context,
            "warmup": plan.warmup,
            "reps": plan.reps,
            "clock": "cuda events" if cuda else plan.clock,
        },
        "units": "milliseconds per layer per operator (emb and lm_head per iteration); medians",
    }


# -- the measurements ------------------------------------------------------------------------------------------
def _token_ops(torch: Any, w: K.Weights, m: int) -> dict[str, Callable[[], Any]]:
    """Closures running each token-indexed operator on m tokens (lm_head: m sequences)."""
    s, lw, dev, dt = w.s, w.layers[0], w.device, w.dtype
    x = torch.randn(m, s.h, device=dev, dtype=dt)
    ids = torch.randint(0, s.vocab, (m,), device=dev)
    pos = torch.arange(m, device=dev) % w.cos.shape[0]
    q = torch.randn(m, s.nq, s.d, device=dev, dtype=dt)
    k = torch.randn(m, s.nkv, s.d, device=dev, dtype=dt)
    att = torch.randn(m, s.nq * s.d, device=dev, dtype=dt)
    gu = torch.randn(m, (2 if s.gated else 1) * s.inter, device=dev, dtype=dt)
    mid = torch.randn(m, s.inter, device=dev, dtype=dt)
    return {
        "emb": lambda: w.emb[ids],
        "input_layernorm": lambda: K.rmsnorm(torch, x, lw["ln1"]),
        "attn_pre_proj": lambda: K.linear(torch, x, lw["wqkv"]),
        "attn_rope": lambda: K.rope(torch, q, k, w.cos, w.sin, pos),
        "attn_post_proj": lambda: K.linear(torch, att, lw["wo"]),
        "post_attention_layernorm": lambda: K.rmsnorm(torch, x, lw["ln2"]),
        "mlp_up_proj": lambda: K.linear(torch, x, lw["wup"]),
        "mlp_act": lambda: K.act(torch, gu, s.gated),
        "mlp_down_proj": lambda: K.linear(torch, mid, lw["wdown"]),
        "add": lambda: x + x,
        "lm_head": lambda: K.lm_head(torch, w, x),
    }


def measure_operators(
    torch: Any, w: K.Weights, plan: Plan, timer: Timer, model: ModelSpec, tp: int
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    rows, spread = [], []
    shape = shape_of(model)
    for m in plan.token_grid():
        row: dict[str, Any] = {"model": model.name, **shape, "tp": tp, "num_tokens": m}
        for op, fn in _token_ops(torch, w, m).items():
            t = timer(fn)
            row[op] = t.median_s * 1e3
            spread.append({"table": "operators", "op": op, "key": f"num_tokens={m}", **_ms(t)})
        rows.append(row)
    return pd.DataFrame(rows), spread


def measure_attention(
    torch: Any, w: K.Weights, plan: Plan, timer: Timer, model: ModelSpec, tp: int
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    s, dev, dt = w.s, w.device, w.dtype
    rows, spread = [], []
    shape = shape_of(model)
    base = {"model": model.name, **shape, "tp": tp}
    qs = [q for q in PREFILL_Q if q <= plan.max_tokens] or [plan.max_tokens]
    cs = sorted({c for c in PREFILL_C if c <= plan.max_context} | {0, plan.max_context // 2})
    for q in qs:
        for c in cs:
            if c + q > model.max_context:
                continue
            cap = 2 * (c + q)  # serving caches hold prompt + output: attention reads a strided prefix
            cache = (
                torch.randn(s.nkv, cap, s.d, device=dev, dtype=dt),
                torch.randn(s.nkv, cap, s.d, device=dev, dtype=dt),
            )
            qq = torch.randn(q, s.nq, s.d, device=dev, dtype=dt)
            kk = torch.randn(q, s.nkv, s.d, device=dev, dtype=dt)

            def prefill(qq: Any = qq, kk: Any = kk, cache: Any = cache, c: int = c) -> Any:
                return K.attn_prefill(torch, qq, kk, kk, cache, c)

            t = timer(prefill)
            rows.append(
                {**base, "phase": "prefill", "batch": 1, "q_tokens": q, "kv_tokens": c, "time_ms": t.median_s * 1e3}
            )
            spread.append({"table": "attention", "op": "prefill", "key": f"q={q},c={c}", **_ms(t)})
    bs = [b for b in DECODE_B if b <= plan.max_batch] or [plan.max_batch]
    ctxs = sorted({c for c in DECODE_CTX if c <= plan.max_context} | {plan.max_context})
    for b in bs:
        for c in ctxs:
            caches = [  # capacity beyond the context, as in serving (strided prefix)
                (
                    torch.randn(s.nkv, 2 * c, s.d, device=dev, dtype=dt),
                    torch.randn(s.nkv, 2 * c, s.d, device=dev, dtype=dt),
                )
                for _ in range(b)
            ]
            qq = torch.randn(b, s.nq, s.d, device=dev, dtype=dt)
            kk = torch.randn(b, s.nkv, s.d, device=dev, dtype=dt)
            ctx = [c - 1] * b  # write at c-1, attend over c tokens

            def decode(qq: Any = qq, kk: Any = kk, caches: Any = caches, ctx: Any = ctx) -> Any:
                return K.attn_decode(torch, qq, kk, kk, caches, ctx)

            t = timer(decode)
            rows.append(
                {**base, "phase": "decode", "batch": b, "q_tokens": 1, "kv_tokens": c, "time_ms": t.median_s * 1e3}
            )
            spread.append({"table": "attention", "op": "decode", "key": f"batch={b},kv={c}", **_ms(t)})
    return pd.DataFrame(rows), spread


def measure_copies(torch: Any, device: str, plan: Plan, timer: Timer) -> pd.DataFrame:
    """Host <-> device copies (pinned host memory) on a GPU; a memory copy on the CPU."""
    rows = []
    for size in (1 << 16, 1 << 20, 1 << 24, 1 << 26):
        if device.startswith("cuda"):
            host = torch.empty(size, dtype=torch.uint8).pin_memory()
            dev = torch.empty(size, dtype=torch.uint8, device=device)
            pairs = {"h2d": (dev, host), "d2h": (host, dev)}
        else:
            a, b = torch.empty(size, dtype=torch.uint8), torch.empty(size, dtype=torch.uint8)
            pairs = {"memcpy": (a, b)}
        for direction, (dst, src) in pairs.items():

            def copy(dst: Any = dst, src: Any = src) -> Any:
                return dst.copy_(src, non_blocking=False)

            t = timer(copy)
            rows.append({"direction": direction, "size_bytes": size, "time_ms": t.median_s * 1e3})
    return pd.DataFrame(rows)


def _allreduce_worker(rank: int, world: int, device: str, init: str, sizes: list[int], plan: Plan, out: str) -> None:
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo", init_method=init, rank=rank, world_size=world)
    dev = torch.device(f"cuda:{rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    rows = []
    timer = Timer(torch, str(dev), replace(plan, clock="wall"))  # waiting on peers is not CPU time
    for size in sizes:
        buf = torch.ones(size // 2, dtype=torch.bfloat16 if cuda else torch.float16, device=dev)
        dist.barrier()

        def all_reduce(buf: Any = buf) -> Any:
            return dist.all_reduce(buf)

        t = timer(all_reduce)
        rows.append({"size_bytes": size, "time_ms": t.median_s * 1e3})
    if rank == 0:
        pd.DataFrame(rows).to_csv(out, index=False)
    dist.destroy_process_group()


def measure_allreduce(device: str, world: int, plan: Plan) -> pd.DataFrame:
    """All-reduce of bf16 buffers across `world` local processes (NCCL on GPUs, gloo on CPU)."""
    import torch.multiprocessing as mp

    sizes = [1 << p for p in range(11, 27 if device.startswith("cuda") else 21, 2)]
    with tempfile.TemporaryDirectory() as tmp:
        init = f"file://{tmp}/rendezvous"
        out = f"{tmp}/ar.csv"
        mp.spawn(_allreduce_worker, args=(world, device, init, sizes, plan, out), nprocs=world, join=True)
        df = pd.read_csv(out)
    df.insert(0, "collective", "all_reduce")
    df.insert(1, "num_workers", world)
    df.insert(2, "devices_per_node", world)
    return df


def _ms(t: Timing) -> dict[str, Any]:
    return {"median_ms": t.median_s * 1e3, "p10_ms": t.p10_s * 1e3, "p90_ms": t.p90_s * 1e3, "n": t.n}


def device_spec(prov: dict[str, Any], ops: pd.DataFrame, copies: pd.DataFrame, model: ModelSpec, tp: int) -> dict:
    """A GPUSpec-shaped estimate of this device: best achieved GEMM FLOP/s and copy bandwidth."""
    s = K.Shapes.of(model, tp)
    up = (2 if s.gated else 1) * s.inter
    shapes = {
        "attn_pre_proj": (s.h, s.qkv),
        "attn_post_proj": (s.nq * s.d, s.h),
        "mlp_up_proj": (s.h, up),
        "mlp_down_proj": (s.inter, s.h),
    }
    best = 0.0
    for op, (k, n) in shapes.items():
        best = max(best, float((2.0 * ops["num_tokens"] * k * n / (ops[op] * 1e-3)).max()))
    bw = float((2 * copies["size_bytes"] / (copies["time_ms"] * 1e-3)).max()) if not copies.empty else 1e10
    cuda = prov["device_kind"] == "cuda"
    mem = _memory_bytes(cuda)
    return {
        "name": _slug(str(prov["device"])),
        "memory_bytes": mem,
        "bf16_flops": best,
        "mem_bw": bw,
        "intra_node_bw": 1e10,
        "intra_node_link": "pcie",
        "host_link_bw": bw,
        "price_per_hour": 0.0,
        "tdp_w": 1.0,
        "sources": [f"estimated by servesim calibrate measure on {prov['date']}: peak = best achieved rates"],
    }


def _memory_bytes(cuda: bool) -> float:
    if cuda:
        import torch

        return float(torch.cuda.get_device_properties(0).total_memory)
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 16e9


def _slug(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    return "-".join(p for p in out.split("-") if p)[:48] or "device"


def measure(
    model: ModelSpec,
    out: str | Path,
    *,
    device: str = "cpu",
    tp: int = 1,
    dtype: str | None = None,
    plan: Plan | None = None,
    threads: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Measure `model`'s operators on `device` and write a table directory to `out`."""
    torch = K.torch_mod()
    plan = plan or Plan()
    dtype = dtype or ("bf16" if device.startswith("cuda") else "fp32")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from sim.errors import ServesimError

        raise ServesimError("--device cuda: no CUDA device is visible to torch")
    if threads:
        torch.set_num_threads(threads)
    say = log or (lambda _m: None)
    timer = Timer(torch, device, plan)
    with torch.inference_mode():
        w = K.Weights(model, tp, device, dtype, seed, layers=1)
        say(f"operators over {len(plan.token_grid())} token counts")
        ops, spread = measure_operators(torch, w, plan, timer, model, tp)
        say("attention prefill and decode")
        att, spread2 = measure_attention(torch, w, plan, timer, model, tp)
        copies = measure_copies(torch, device, plan, timer) if plan.copies else pd.DataFrame()
    world = plan.collective_workers
    if world == 0 and device.startswith("cuda"):
        world = torch.cuda.device_count() if torch.cuda.device_count() >= 2 else 0
    coll = pd.DataFrame()
    if world >= 2:
        say(f"all-reduce over {world} workers")
        coll = measure_allreduce(device, world, plan)
    prov = provenance(torch, device, dtype, model, tp, plan)
    d = write_tables(MeasuredTables(ops, att, coll, prov), out)
    pd.DataFrame(spread + spread2).to_csv(d / "spread.csv", index=False, float_format="%.5g")
    if not copies.empty:
        copies.to_csv(d / "copies.csv", index=False, float_format="%.5g")
    spec = device_spec(prov, ops, copies, model, tp)
    (d / "device.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (d / "model.yaml").write_text(yaml.safe_dump(model.model_dump(exclude={"num_params"}), sort_keys=False))
    return d

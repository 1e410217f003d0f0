"""A real serving loop on this CPU, to check the simulator against: the proof that measure -> table ->
simulate predicts a real system.

`serve()` runs a small random-weight Llama-style transformer (`CPU_MODEL`, built from `calibrate.kernels`,
the same operators the harness times) with continuous batching exactly as servesim's `fcfs` policy
plans it: each iteration first admits waiting prompts in arrival order (whole prompts, up to
`max_num_batched_tokens`, a longer prompt alone, at most `max_num_seqs` running), and only when none is
admitted decodes every running sequence one token. Each sequence has its own KV cache sized for its
prompt + output. Arrivals follow the trace's clock in wall time; the loop records every iteration's
batch and duration and every request's arrival, first token and completion. `measure_iterations()`
times the same engine on synthetic batches, the input `calibrate fit` takes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from calibrate import kernels as K
from calibrate.harness import preemptions
from hwprofiles.specs import ModelSpec

# The served model: 4 layers, hidden 512, grouped-query attention, fp32 on the CPU (~17 M parameters).
CPU_MODEL = ModelSpec(
    name="cpu-llama-4l-512",
    num_layers=4,
    hidden_size=512,
    num_heads=8,
    num_kv_heads=4,
    head_dim=64,
    intermediate_size=1408,
    vocab_size=8192,
    max_context=4096,
    gated_mlp=True,
    dtype_bytes=4,
)


@dataclass
class Seq:
    """One request inside the engine."""

    rid: int
    arrival_s: float
    prompt: np.ndarray
    output: int
    cache: list[tuple[Any, Any]] | None = None
    kv: int = 0  # tokens in the KV cache
    generated: int = 0
    last: int = 0  # last sampled token
    first_token_s: float = float("nan")
    completion_s: float = float("nan")


class Engine:
    """The model plus one `step()`: a batch of whole-prompt prefills or of single-token decodes."""

    def __init__(self, spec: ModelSpec = CPU_MODEL, *, seed: int = 0, device: str = "cpu", dtype: str = "fp32"):
        self.torch = K.torch_mod()
        self.spec = spec
        self.w = K.Weights(spec, 1, device, dtype, seed)

    def admit(self, seq: Seq) -> None:
        seq.cache = self.w.new_cache(len(seq.prompt) + seq.output)

    def step(self, prefill: list[Seq], decode: list[Seq]) -> None:
        """Run one iteration and advance every sequence by one token."""
        torch = self.torch
        if prefill:
            ids = np.concatenate([s.prompt for s in prefill])
            pos = np.concatenate([np.arange(len(s.prompt)) for s in prefill])
        else:
            ids = np.array([s.last for s in decode], dtype=np.int64)
            pos = np.array([s.kv for s in decode], dtype=np.int64)
        with torch.inference_mode():
            nxt = K.forward(
                self.w,
                torch.from_numpy(ids),
                torch.from_numpy(pos),
                [(len(s.prompt), 0, s.cache) for s in prefill],  # type: ignore[misc]  # admitted: cache is set
                [s.cache for s in decode],  # type: ignore[misc]  # admitted: cache is set
                [s.kv for s in decode],
            ).tolist()
        for s, tok in zip((*prefill, *decode), nxt, strict=True):
            s.kv += len(s.prompt) if s.generated == 0 else 1
            s.generated += 1
            s.last = int(tok)


class Clock:
    """Seconds since the run started: wall time, or the serving thread's CPU time (`thread`).

    On a shared machine other processes time-share the cores and inflate wall time at random; the
    thread's CPU clock counts only this loop's own work (on an idle machine the two agree, as the loop
    is single-threaded and does no I/O). With `thread`, idle gaps jump straight to the next arrival.
    """

    def __init__(self, kind: str = "thread") -> None:
        if kind not in ("wall", "thread"):
            raise ValueError(f"clock must be wall or thread, not {kind!r}")
        self.kind = kind
        self._t0 = time.perf_counter()
        self._cpu0 = time.thread_time()
        self._skipped = 0.0

    def now(self) -> float:
        if self.kind == "wall":
            return time.perf_counter() - self._t0
        return time.thread_time() - self._cpu0 + self._skipped

    def wait_until(self, t: float) -> None:
        gap = t - self.now()
        if gap <= 0:
            return
        if self.kind == "wall":
            time.sleep(gap)
        else:
            self._skipped += gap


@dataclass
class RunLog:
    """What a real run recorded: one row per request and one per iteration (seconds from the start)."""

    requests: pd.DataFrame
    iterations: pd.DataFrame
    wall_s: float
    config: dict[str, Any] = field(default_factory=dict)


def serve(
    workload: pd.DataFrame,
    *,
    engine: Engine | None = None,
    max_num_seqs: int = 64,
    max_num_batched_tokens: int = 2048,
    seed: int = 0,
    threads: int | None = 1,
    clock: str = "thread",
    progress: Callable[[int, int], None] | None = None,
) -> RunLog:
    """Serve `workload` (arrival_s, prompt_tokens, output_tokens) in real time with fcfs continuous batching."""
    eng = engine or Engine(seed=seed)
    if threads:
        eng.torch.set_num_threads(threads)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    vocab = eng.w.s.vocab
    pending = deque(
        Seq(i, float(a), rng.integers(0, vocab, int(p)), int(o))
        for i, (a, p, o) in enumerate(
            zip(workload["arrival_s"], workload["prompt_tokens"], workload["output_tokens"], strict=True)
        )
    )
    total = len(pending)
    waiting: deque[Seq] = deque()
    running: list[Seq] = []
    done: list[Seq] = []
    iters: list[tuple[float, float, int, int, str, int, int, int]] = []
    warm = [Seq(-1, 0.0, rng.integers(0, vocab, 16), 3)]  # first calls pay one-off allocation costs
    eng.admit(warm[0])
    eng.step(warm, [])
    eng.step([], warm)
    clk = Clock(clock)
    while pending or waiting or running:
        now = clk.now()
        while pending and pending[0].arrival_s <= now:
            waiting.append(pending.popleft())
        if not waiting and not running:
            clk.wait_until(pending[0].arrival_s)
            continue
        start = now
        sw0 = preemptions()
        prefill: list[Seq] = []
        tokens = 0
        while waiting and len(running) < max_num_seqs:  # servesim's fcfs: prefill-first, whole prompts
            n = len(waiting[0].prompt)
            if prefill and tokens + n > max_num_batched_tokens:
                break
            seq = waiting.popleft()
            eng.admit(seq)
            running.append(seq)
            prefill.append(seq)
            tokens += n
        decode = [] if prefill else list(running)
        ctx = sum(s.kv + 1 for s in decode)
        eng.step(prefill, decode)
        end = clk.now()
        for s in prefill:
            s.first_token_s = end
        finished = [s for s in (*prefill, *decode) if s.generated == s.output]
        for s in finished:
            s.completion_s = end
            running.remove(s)
            s.cache = None
            done.append(s)
        lens = ";".join(str(len(s.prompt)) for s in prefill)
        iters.append((start, end, len(prefill), tokens, lens, len(decode), ctx, preemptions() - sw0))
        if progress is not None:
            progress(len(done), total)
    wall = clk.now()
    return RunLog(
        add_latencies(_request_frame(done)),
        _iteration_frame(iters),
        wall,
        {"max_num_seqs": max_num_seqs, "max_num_batched_tokens": max_num_batched_tokens, "seed": seed, "clock": clock},
    )


def _request_frame(done: list[Seq]) -> pd.DataFrame:
    """One row per finished request (raw timestamps), in request order."""
    return pd.DataFrame(
        {
            "request": [s.rid for s in done],
            "arrival_s": [s.arrival_s for s in done],
            "prompt_tokens": [len(s.prompt) for s in done],
            "output_tokens": [s.output for s in done],
            "first_token_s": [s.first_token_s for s in done],
            "completion_s": [s.completion_s for s in done],
        }
    ).sort_values("request", ignore_index=True)


def _iteration_frame(iters: list[tuple[float, float, int, int, str, int, int, int]]) -> pd.DataFrame:
    """One row per iteration: its span, its prefill and decode work, and the OS preemptions it suffered."""
    it = pd.DataFrame(
        iters,
        columns=[
            "start_s",
            "end_s",
            "prefill_seqs",
            "prefill_tokens",
            "prefill_lens",
            "decode_seqs",
            "decode_ctx",
            "preemptions",
        ],
    )
    it["time_s"] = it["end_s"] - it["start_s"]
    return it


def add_latencies(req: pd.DataFrame) -> pd.DataFrame:
    """vLLM's per-request metrics from raw timestamps: ttft, e2el, tpot (outputs longer than one token)."""
    req = req.copy()
    req["ttft_s"] = req["first_token_s"] - req["arrival_s"]
    req["e2el_s"] = req["completion_s"] - req["arrival_s"]
    many = req["output_tokens"] > 1
    req["tpot_s"] = np.where(many, (req["e2el_s"] - req["ttft_s"]) / (req["output_tokens"] - 1).clip(lower=1), np.nan)
    return req


def measure_iterations(
    rows: list[tuple[int, int, int]],
    *,
    engine: Engine | None = None,
    reps: int = 5,
    warmup: int = 2,
    seed: int = 0,
    threads: int | None = 1,
    clock: str = "thread",
) -> pd.DataFrame:
    """Median time (`Clock`) of `step()` for each (prefill_tokens, batch_size, context_tokens) row.

    A prefill row runs `batch_size` prompts of `prefill_tokens`; a decode row (`prefill_tokens == 0`) one
    decode step of `batch_size` sequences holding `context_tokens` each. The CSV `calibrate fit` reads.
    """
    eng = engine or Engine(seed=seed)
    if threads:
        eng.torch.set_num_threads(threads)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    vocab = eng.w.s.vocab
    out = []
    for p, b, c in rows:
        samples, clean = [], []
        decoding: list[Seq] = []
        if p == 0:  # as in serving, a decoding sequence's cache was written (touched) by its prefill
            decoding = [Seq(i, 0.0, rng.integers(0, vocab, 1), c + 2) for i in range(b)]
            for s in decoding:
                eng.admit(s)
                for kc, vc in s.cache or []:
                    kc.zero_()
                    vc.zero_()
        for r in range(warmup + reps):
            if p > 0:  # a prefill allocates its sequences' caches at admission, as `serve` does
                seqs = [Seq(i, 0.0, rng.integers(0, vocab, p), 2) for i in range(b)]
                for s in seqs:
                    eng.admit(s)
                sw0 = preemptions()
                clk = Clock(clock)
                eng.step(seqs, [])
            else:
                for s in decoding:
                    s.kv, s.generated = c, 1
                sw0 = preemptions()
                clk = Clock(clock)
                eng.step([], decoding)
            if r >= warmup:
                samples.append(clk.now())
                if preemptions() == sw0:
                    clean.append(samples[-1])
        if len(clean) * 2 >= len(samples):  # keep the samples no other process interrupted
            samples = clean
        out.append(
            {"prefill_tokens": p, "batch_size": b, "context_tokens": c, "time_ms": float(np.median(samples)) * 1e3}
        )
    return pd.DataFrame(out)


def scaled_trace(
    name: str = "azure-conv",
    *,
    num_requests: int = 150,
    prompt_scale: float = 1 / 8,
    output_scale: float = 1 / 4,
    max_prompt: int = 512,
    max_output: int = 128,
    time_scale: float = 1.0,
    skip: int = 0,
) -> pd.DataFrame:
    """The first `num_requests` of a shipped trace with lengths scaled down to fit a CPU (arrivals kept)."""
    from sim.workload.traces import TRACE_FORMATS, load_trace, resolve_trace_path

    tr = load_trace(resolve_trace_path(name), TRACE_FORMATS.get(name, "csv"))
    sl = slice(skip, skip + num_requests)
    if tr.arrival_s is None:
        from sim.errors import ServesimError

        raise ServesimError(f"trace {name!r} has no arrival times")
    arr = tr.arrival_s[sl] - tr.arrival_s[sl][0]
    return pd.DataFrame(
        {
            "arrival_s": arr * time_scale,
            "prompt_tokens": np.clip(np.round(tr.prompt_tokens[sl] * prompt_scale), 1, max_prompt).astype(np.int64),
            "output_tokens": np.clip(np.round(tr.output_tokens[sl] * output_scale), 1, max_output).astype(np.int64),
        }
    )

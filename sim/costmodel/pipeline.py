"""Pipeline parallelism (`cluster.pp`): an instance's layers split over `pp` stages of `tp` GPUs each.

Mechanism (an analytic round, not separate micro-batch processes): the instance's batch for one iteration
is split into m = min(pp, sequences) micro-batches of disjoint requests (largest first, onto the lightest
micro-batch by tokens — the way vLLM's pp virtual engines each hold their own requests). Each micro-batch
passes through every stage; between stages its activations (hidden × tokens × bytes) cross the link. In
steady state micro-batch j's next pass enters stage 0 as soon as its previous one left the last stage, so
one round (every micro-batch advancing one step) lasts

    T = max( max_s Σ_j t[j][s],  max_j (Σ_s t[j][s] + (pp − 1)·x[j]) )

— the busiest stage when the pipeline is full (m ≥ pp: throughput set by the slowest stage), else one
micro-batch's chain through all stages and links (m < pp: the rest of the round is bubble). A single
sequence therefore sees the sum of its stage times plus the transfers. Assumptions: every token of a round
is credited at the round's end (micro-batch j's tokens really come up to (m−1) stage times earlier);
the first round after an idle period is priced as steady state (the one-off fill, (m−1) stage times, is
not charged); the formula is the exact cycle time of the cyclic schedule for balanced micro-batches
(`pipeline_schedule` proves it in the tests) and a lower bound for unbalanced ones. The LM head is priced
on the last stage only and the per-iteration overhead on the first only.

The serving engine's CPU step (`scheduler_s` + `sample_per_seq_s` per sequence) is one engine-core process
scheduling every micro-batch and processing its output. In series (no async scheduling) it rides on the first
stage, like the overhead. With async scheduling it overlaps the GPUs, so the CPU is a resource of its own that
serves each micro-batch once per round: T = max(the GPU round above, Σ_j cpu(n_j)), with the stages priced
without it. (vLLM turned async scheduling off under pipeline parallelism until #32359, Jan 2026, "Support async
scheduling + PP with constraints"; #32618 completed it: for older releases set `async_scheduling: false`.)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np

from sim.costmodel.models import Chunks, CostModel

MicroBatch = tuple[list[tuple[int, int]], int, int]  # (prefill chunks, decoding sequences, their context sum)
Transfer = Callable[[float], float]  # seconds to move one micro-batch's activations (by tokens) between stages


def stage_layers(num_layers: int, pp: int) -> list[int]:
    """Layers per stage, the remainder spread over the first stages (uneven splits allowed)."""
    base, extra = divmod(num_layers, pp)
    return [base + (1 if s < extra else 0) for s in range(pp)]


def split_sizes(n: int, m: int) -> list[int]:
    """n items in m near-equal parts (the first parts take the remainder)."""
    base, extra = divmod(n, m)
    return [base + (1 if j < extra else 0) for j in range(m)]


def round_time(t: Sequence[Sequence[float]], x: Sequence[float]) -> float:
    """Steady-state round of micro-batches j with stage times t[j][s] and per-hop transfer x[j]."""
    pp = len(t[0])
    busiest = max(sum(row[s] for row in t) for s in range(pp))
    chain = max(sum(row) + (pp - 1) * xj for row, xj in zip(t, x, strict=True))
    return max(busiest, chain)


def pipeline_schedule(t: Sequence[Sequence[float]], x: Sequence[float], rounds: int) -> list[list[float]]:
    """Exact event times of `rounds` rounds of the cyclic pipeline: end[r][j] = when micro-batch j leaves
    the last stage in round r. A stage runs one micro-batch at a time, in order j = 0..m−1; micro-batch j
    enters stage 0 of round r+1 when its round r has left the last stage (its next token needs the last).
    The reference `round_time` and the bubble fractions are checked against (GPipe fill at rounds = 1)."""
    m, pp = len(t), len(t[0])
    free = [0.0] * pp  # when each stage is next free
    ready = [0.0] * m  # when each micro-batch may enter stage 0
    out = []
    for _ in range(rounds):
        ends = []
        for j in range(m):
            at = ready[j]
            for s in range(pp):
                if s:
                    at += x[j]
                start = max(at, free[s])
                at = free[s] = start + t[j][s]
            ready[j] = at
            ends.append(at)
        out.append(ends)
    return out


class PipelineCost:
    """A `CostModel` for a pp-stage instance from per-stage cost models (`stages[s]` prices stage s's layers).

    `strip(s, seqs)` is what stage s's own cost model charges that the stage does not run (the LM head
    except on the last stage, the per-iteration overhead except on the first); `transfer(tokens)` is one
    inter-stage hop of a micro-batch's activations."""

    def __init__(
        self,
        stages: Sequence[CostModel],
        transfer: Transfer,
        strip: Callable[[int, int], float],
        host: Callable[[int], float] | None = None,
    ) -> None:
        self.stages = list(stages)
        self.pp = len(self.stages)
        self.transfer = transfer
        self.strip = strip
        self.host = host  # async scheduling: the engine core's CPU seconds for a micro-batch of that many sequences

    def _host_round(self, seqs: Sequence[int]) -> float:
        """The engine core's CPU time of one round (one step of each micro-batch), when it overlaps the GPUs."""
        return sum(self.host(n) for n in seqs if n) if self.host is not None else 0.0

    def _micro_batches(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> list[MicroBatch]:
        """(prefill chunks, decodes, decode context) per micro-batch; decodes' context split in proportion."""
        seqs = len(prefill) + n_decode
        m = max(1, min(self.pp, seqs))
        bins: list[MicroBatch] = []
        load = [0] * m
        chunks: list[list[tuple[int, int]]] = [[] for _ in range(m)]
        for q, c in sorted(prefill, key=lambda qc: -qc[0]):
            j = load.index(min(load))
            chunks[j].append((q, c))
            load[j] += q
        dec = [0] * m
        for _ in range(n_decode):  # one token each: onto the lightest micro-batch
            j = load.index(min(load))
            dec[j] += 1
            load[j] += 1
        for j in range(m):
            ctx = round(decode_ctx * dec[j] / n_decode) if n_decode else 0
            bins.append((chunks[j], dec[j], ctx))
        return bins

    def _stage_times(self, chunks: Chunks, n_dec: int, ctx: int) -> list[float]:
        seqs = len(chunks) + n_dec
        return [cost.iteration(chunks, n_dec, ctx) - self.strip(s, seqs) for s, cost in enumerate(self.stages)]

    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        bins = self._micro_batches(prefill, n_decode, decode_ctx)
        t = [self._stage_times(ch, nd, ctx) for ch, nd, ctx in bins]
        x = [self.transfer(float(sum(q for q, _ in ch) + nd)) for ch, nd, _ in bins]
        return max(round_time(t, x), self._host_round([len(ch) + nd for ch, nd, _ in bins]))

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        """Elementwise in `ctx_sums` (stepping and fast-forwarding stay bit-identical)."""
        ctx = np.asarray(ctx_sums, dtype=np.float64)
        m = max(1, min(self.pp, n))
        sizes = split_sizes(n, m)
        per_stage = [np.zeros(len(ctx)) for _ in range(self.pp)]
        chain = np.zeros(len(ctx))
        for nj in sizes:
            cj = ctx * (nj / n) if n else ctx
            total = np.full(len(ctx), (self.pp - 1) * self.transfer(float(nj)))
            for s, cost in enumerate(self.stages):
                ts = cost.decode_run(nj, cj) - self.strip(s, nj)
                per_stage[s] = per_stage[s] + ts
                total = total + ts
            chain = np.maximum(chain, total)
        busiest = per_stage[0]
        for s in range(1, self.pp):
            busiest = np.maximum(busiest, per_stage[s])
        return np.maximum(np.maximum(busiest, chain), self._host_round(sizes))

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        """The first micro-batch's per-operator costs summed over stages, plus the round's bubble and links."""
        bins = self._micro_batches(prefill, n_decode, decode_ctx)
        ops: dict[str, float] = {}
        for ch, nd, ctx in bins[:1]:
            for s, cost in enumerate(self.stages):
                for k, v in cost.breakdown(ch, nd, ctx).items():
                    ops[k] = ops.get(k, 0.0) + v
                ops["overhead"] = ops.get("overhead", 0.0) - self.strip(s, len(ch) + nd)
        total = self.iteration(prefill, n_decode, decode_ctx)
        ops["pp_transfer"] = (self.pp - 1) * self.transfer(float(sum(q for q, _ in bins[0][0]) + bins[0][1]))
        ops["pp_pipeline"] = total - sum(ops.values())  # the other micro-batches and the bubble
        return ops


def build_pipeline(
    build_stage: Callable[[int], CostModel],
    num_layers: int,
    pp: int,
    hop: Transfer,
) -> PipelineCost:
    """A PipelineCost whose stage s is `build_stage(layers of stage s)` (stages with equal layer counts share
    one cost model); strips the LM head off all but the last stage and the per-iteration overhead off all but
    the first, where the stage model prices them apart (the roofline and table kinds)."""
    layers = stage_layers(num_layers, pp)
    if min(layers) < 1:
        from sim.errors import ServesimError

        raise ServesimError(f"cluster.pp: {pp} stages for a model of {num_layers} layers; expected pp <= {num_layers}")
    built: dict[int, CostModel] = {}
    stages = [built.setdefault(n, build_stage(n)) for n in layers]
    engine = getattr(stages[0], "engine", None)
    overlapped = engine is not None and engine.async_scheduling
    if overlapped:  # the CPU step is the pipeline's own resource (module docstring): the stages price the GPUs only
        stages = [gpu_only(c) for c in stages]

    def strip(s: int, seqs: int) -> float:
        cost = stages[s]
        out = 0.0
        if s != pp - 1:
            lm = getattr(cost, "_lm_head", None)  # RooflineCost's; other kinds price no LM head apart
            out += float(lm(seqs)) if lm is not None else 0.0
        if s != 0:
            out += float(getattr(getattr(cost, "params", None), "iteration_overhead_s", 0.0))
            engine = getattr(cost, "engine", None)  # serving-engine CPU time (scheduling, sampling): once per step
            if engine is not None and seqs and not engine.async_scheduling:  # async: `host`, zero in the stages
                out += engine.cpu_s(seqs)
        return out

    return PipelineCost(stages, hop, strip, engine.cpu_s if engine is not None and overlapped else None)


def gpu_only(cost: CostModel) -> CostModel:
    """`cost` with its engine's CPU step set to zero (a copy sharing the operator caches, which do not depend on
    it), for a caller that charges the engine core's CPU once itself: a pipeline per micro-batch, a speculative
    verifier for its draft steps (sim.cluster.pools)."""
    engine = getattr(cost, "engine", None)
    if engine is None:
        return cost
    gpu = copy.copy(cost)
    setattr(gpu, "engine", engine.model_copy(update={"scheduler_s": 0.0, "sample_per_seq_s": 0.0}))  # noqa: B010
    return gpu


def activation_hop(hidden: int, dtype_bytes: float, bandwidth: float, latency_s: float) -> Transfer:
    """One inter-stage hop: hidden × tokens × bytes / bandwidth + latency."""

    def hop(tokens: float) -> float:
        return latency_s + hidden * tokens * dtype_bytes / bandwidth if tokens else 0.0

    return hop


def stage_kv_fraction(num_layers: int, pp: int) -> float:
    """Share of the model's per-token KV the fullest stage's GPUs hold (its layers over all layers)."""
    return math.ceil(num_layers / pp) / num_layers

"""Exact memoisation of iteration pricing: each distinct shape is priced once.

`RooflineCost.iteration` rebuilds the whole operator breakdown for every mixed iteration — per-operator
rooflines, learned-curve interpolation, a one-element numpy array for decode attention — although the
terms depend on few inputs each: the dense operators on the batch's token count, prefill attention on each
chunk's (new, cached) tokens, the LM head on the sequence count. `MemoCost` caches every term on exactly
its own inputs and adds the same floats in the same order with the same `sum()` calls, so every iteration
time is bit-identical to the unwrapped model (``tests/test_costmemo.py`` proves it on random batches).

That summation mirrors `RooflineCost.breakdown`, and the mirror cannot drift unnoticed: the memo checks itself
against the real `iteration` on probe batches when it is built (`memoised` leaves the model unwrapped if one
differs) and on every batch with a token or sequence count it has not seen; the first difference switches it to the real
`iteration` for good, with a warning, so prices stay exact while the mirror waits to be brought in line.
Only `RooflineCost` (the `roofline` and `table` kinds) is wrapped, and only while its class does not override
`breakdown` or `iteration`; any other model is returned as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from sim.core.speculative import VerifyChunk
from sim.costmodel.attention import AttentionEfficiency
from sim.costmodel.eager import busiest_rank, eager_host_s, engine_terms, moe_layers
from sim.costmodel.models import Chunks, CostModel, RooflineCost

# (Σ dense, overhead, LM head, engine CPU, launch ceiling or None, decode attention floor, async scheduling,
# eager host time: `sim.costmodel.eager`)
Row = tuple[float, float, float, float, float | None, float, bool, float]

_UNSEEN: Any = object()  # `decode_coeffs`' cache miss (None is a cached answer)
_MAX_ENTRIES = 1 << 18  # per cache: bounds memory on long runs with ever-new shapes (then priced afresh)

# `sum()` adds floats left to right in one double (CPython 3.11); 3.12 compensates (Neumaier), and then a sum
# cannot be split into a cached prefix plus the rest: `chunk_steps` prices step by step through `iteration`
SEQUENTIAL_SUM = sum([1e16, 1.0, -1e16]) == 0.0

# the breakdown `MemoCost.iteration` mirrors; a model whose class overrides it is not wrapped
_MIRRORED = RooflineCost.breakdown

# (prefill chunks, decodes, per-decode context) checked when a memo is built: prefill alone, with decodes,
# several chunks, long and short contexts, batch sizes in and beyond captured CUDA graphs
PROBES: tuple[tuple[tuple[tuple[int, int], ...], int, int], ...] = (
    (((512, 0),), 0, 0),
    (((300, 1024),), 20, 900),
    (((100, 0), (50, 2000), (7, 7)), 255, 1600),
    (((1, 0),), 1, 100),
    (((8192, 8192),), 0, 0),
    (((4000, 0),), 600, 3000),
    (((16, 32768),), 2048, 40),
)


class MemoCost:
    """A `RooflineCost` whose `iteration()` prices each term once per distinct input (see module doc).
    Everything else (`breakdown`, `decode_run`, attributes) is the wrapped model's."""

    def __init__(self, cost: RooflineCost) -> None:
        self.cost = cost
        self._seq_s = cost.params.seq_overhead_s
        self._dense: dict[int, tuple[float, ...]] = {}  # tokens -> dense operator seconds, breakdown's order
        self._overhead_at = list(cost._dense(1)).index("overhead")
        # new -> cached -> prefill attention seconds: int keys (a chunk size's dict, looked up once per chunk run in
        # `_row_steps`, then keyed by context) hash and compare cheaper than a (new, cached) tuple made per lookup
        self._prefill: dict[int, dict[int, float]] = {}
        self._n_prefill = 0  # entries over all of `_prefill`'s dicts (bounded by `_MAX_ENTRIES`)
        self._prefill_attn = (plain := _plain_prefill_attn(cost)) or cost._prefill_attn  # a (new, cached) pair unseen
        # compiled (not loaded from the `.py`), plain attention is computed at each use: cheaper than a lookup among
        # ~10^5 cold contexts; interpreted, the lookup is cheaper. The same floats either way (SPEED.md, s15-speed)
        self._direct: PlainAttn | None = plain if not str(__file__).endswith(".py") else None
        self._lm: dict[int, float] = {}  # sequences -> LM head seconds
        self._coeffs: dict[int, tuple[float, float] | None] = {}  # sequences -> decode_coeffs (pure in n)
        self._decode_linear = not (cost.curves and cost._attn_grids.get("decode") is not None)
        self.diverged = False  # the mirror disagreed with the real `iteration` once: priced by it since
        # (tokens, decodes, prefill chunks) -> the parts of an iteration's sum (`_row`); only where the sum splits
        self._rows: dict[tuple[int, int, int], Row] = {}
        # the single-chunk rows again, by decodes then chunk tokens (`_rows[(q + n, n, 1)]` is `_one[n][q]`): the
        # lookups of `iteration`'s one-chunk path and of `chunk_steps` (once or twice per mixed step or chunk run)
        # hash two ints instead of building and hashing a tuple (SPEED.md, s14-pure)
        self._one: dict[int, dict[int, Row]] = {}
        self._row_ok = SEQUENTIAL_SUM and type(cost)._engine_s is RooflineCost._engine_s
        # rows may be derived (`_derive_row`): None until a row reproduces the full sum it was made from (`_row`),
        # then True, and False for good once one does not
        self._derive: bool | None = None
        # tests' seam (compiled, `MemoCost` is a native class: no method can be assigned on an object): called with
        # "iteration" where `chunk_steps` prices a step through `iteration`, "_iteration" where `iteration` prices a
        # shape term by term
        self.spy: Callable[[str], None] | None = None

    def agrees(self) -> bool:
        """Whether the memo prices the probe batches exactly as the real model does."""
        for prefill, n, per_seq in PROBES:  # distinct token counts: each probe is checked (`iteration`)
            try:
                self.cost.iteration(list(prefill), n, n * per_seq)
            except Exception:  # the real model cannot price this shape (it would fail in a run too): skip it
                continue
            self.iteration(list(prefill), n, n * per_seq)
        return not self.diverged

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cost, name)

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        return self.cost.breakdown(prefill, n_decode, decode_ctx)

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        return self.cost.decode_run(n, ctx_sums)

    def decode_coeffs(self, n: int) -> tuple[float, float] | None:
        got = self._coeffs.get(n, _UNSEEN)  # one lookup (a hit is the rule: once per decode step or run)
        if got is not _UNSEEN:
            return got
        got = self.cost.decode_coeffs(n)
        if len(self._coeffs) < _MAX_ENTRIES:
            self._coeffs[n] = got
        return got

    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        """`RooflineCost.iteration`: the same floats summed in the same order."""
        # decode-only goes through `decode_run` (fast-forward equality); a verifier's step (its chunks last) is
        # priced apart from prompt chunks of its shape (`eager.engine_terms`): neither is cached
        if not prefill or isinstance(prefill[-1], VerifyChunk) or self.diverged:  # diverged: the real model's
            return self.cost.iteration(prefill, n_decode, decode_ctx)
        if self._decode_linear or n_decode == 0:  # the row path (`_row`): a shape priced once in full before
            if len(prefill) == 1:
                ((q, c),) = prefill
                by_q = self._one.get(n_decode)
                row = by_q.get(q) if by_q is not None else None
                if row is None:
                    row = self._derive_row(q + n_decode, n_decode, 1)
                if row is not None:
                    direct = self._direct
                    if direct is not None:
                        return _row_sum(row, direct.at(q, c), self.cost._attn_coef * float(decode_ctx))
                    by_ctx = self._prefill.get(q)
                    p = by_ctx.get(c) if by_ctx is not None else None
                    if p is None:
                        p = self._attn_new(q, c)
                    return _row_sum(row, p, self.cost._attn_coef * float(decode_ctx))
            else:
                tokens, parts = n_decode, []
                for q, c in prefill:
                    tokens += q
                    parts.append(self._attn(q, c))
                row = self._rows.get((tokens, n_decode, len(prefill))) or self._derive_row(
                    tokens, n_decode, len(prefill)
                )
                if row is not None:
                    return _row_sum(row, sum(parts), self.cost._attn_coef * float(decode_ctx))
        if self.spy is not None:
            self.spy("_iteration")
        return self._iteration(prefill, n_decode, decode_ctx)

    def _pre(self, q: int) -> dict[int, float]:
        """The prefill attention cached for chunks of `q` new tokens, by cached context (made empty when new)."""
        got = self._prefill.get(q)
        if got is None:
            got = self._prefill[q] = {}
        return got

    def _attn(self, q: int, c: int) -> float:
        """Prefill attention of a chunk of q new tokens after c cached: computed (`_direct`) or cached."""
        p = self._pre(q).get(c) if self._direct is None else self._direct.at(q, c)
        return self._attn_new(q, c) if p is None else p

    def _attn_new(self, q: int, c: int) -> float:
        v: float = self._prefill_attn(q, c)
        if self._n_prefill < _MAX_ENTRIES:
            self._pre(q)[c] = v
            self._n_prefill += 1
        return v

    def _row(
        self, tokens: int, n_decode: int, chunks: int, dense: tuple[float, ...], lm: float, probe: tuple[float, ...]
    ) -> None:
        """Cache what `iteration` adds up for a shape (tokens, decodes, prefill chunks) when that sum can be taken
        in parts: `sum()` adds left to right (`SEQUENTIAL_SUM`), so Σ ops = ((Σ dense + Σ prefill attention) +
        decode attention) + LM head, and the engine terms are `RooflineCost._engine_s`'s own (a subclass that
        overrides it gets no rows). `row`: (Σ dense, overhead, LM head, engine CPU, launch ceiling or None when
        the iteration is graph-captured or has no launch term, decode attention floor, whether the CPU step
        counts only beyond the kernels: vLLM V1 async scheduling). `probe`: (prefill
        attention, decode context, the sum `iteration` got) of the call that prices the shape first: the row is
        kept only when it gives that sum too."""
        if not self._row_ok or len(self._rows) >= _MAX_ENTRIES:
            return
        row = self._make_row(tokens, n_decode, chunks, dense, lm)
        p, ctx, got = probe
        if _row_sum(row, p, self.cost._attn_coef * ctx) == got:
            self._keep(tokens, n_decode, chunks, row)
            self._derive = self._derive is not False
        else:  # the row formula missed a full sum once: rows are no longer derived (`_derive_row`)
            self._derive = False

    def _make_row(self, tokens: int, n_decode: int, chunks: int, dense: tuple[float, ...], lm: float) -> Row:
        """The row of a shape from its dense operators' seconds (the per-sequence overhead added) and LM head."""
        cost = self.cost
        e = cost.engine
        cpu, lim, hidden = 0.0, None, False
        if e is not None and tokens:
            cpu, hidden = e.cpu_s(chunks + n_decode), e.async_scheduling  # `ServingEngineConfig.host_s`
            if e.launch_per_layer_s and not e.graph_captured(busiest_rank(cost, tokens), False):  # per DP rank
                lim = cost.L * e.launch_per_layer_s
        seqs = busiest_rank(cost, chunks + n_decode)
        eager = eager_host_s(e, cost.L, tokens - n_decode, busiest_rank(cost, tokens), seqs, moe_layers(cost))
        floor = cost._attn_floor if n_decode else 0.0
        return (sum(dense), dense[self._overhead_at], lm, cpu, None if eager else lim, floor, hidden, eager)

    def _derive_row(self, tokens: int, n_decode: int, chunks: int) -> Row | None:
        """The row of a shape not priced yet whose token count and sequence count have been (each checked against
        the real model then, `_iteration`), while every row made so far has reproduced its full sum (`_row`): every
        part of a row depends on those counts alone, so the row is what `_iteration` would keep, made without pricing
        the rest. None when a count is new (then `_iteration` prices and checks it)."""
        if not self._derive or len(self._rows) >= _MAX_ENTRIES:
            return None
        dense = self._dense.get(tokens)
        seqs = chunks + n_decode
        lm = self._lm.get(seqs)
        if dense is None or lm is None:
            return None
        if self._seq_s:
            i = self._overhead_at
            dense = (*dense[:i], dense[i] + seqs * self._seq_s, *dense[i + 1 :])
        row = self._make_row(tokens, n_decode, chunks, dense, lm)
        self._keep(tokens, n_decode, chunks, row)
        return row

    def _keep(self, tokens: int, n_decode: int, chunks: int, row: Row) -> None:
        """Cache a shape's row (`_rows`; a single chunk's also in `_one`)."""
        self._rows[(tokens, n_decode, chunks)] = row
        if chunks == 1:
            by_q = self._one.get(n_decode)
            if by_q is None:
                by_q = self._one[n_decode] = {}
            by_q[tokens - n_decode] = row

    def _iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        """`iteration` term by term (a (tokens, sequences) pair not seen yet, several chunks, nonlinear decode
        attention); checks itself against the real model at every new token or sequence count."""
        cost = self.cost
        seqs = len(prefill) + n_decode
        tokens = n_decode
        parts = []
        for q, c in prefill:
            tokens += q
            parts.append(self._attn(q, c))
        cached = self._dense.get(tokens)
        check = cached is None  # a token count not seen before: check the mirror against the real model
        if cached is None:
            dense = tuple(cost._dense(tokens).values())
            if len(self._dense) < _MAX_ENTRIES:
                self._dense[tokens] = dense
        else:
            dense = cached
        i = self._overhead_at
        if self._seq_s:
            dense = (*dense[:i], dense[i] + seqs * self._seq_s, *dense[i + 1 :])
        lm = self._lm.get(seqs)
        if lm is None:  # a sequence count not seen before: check too
            lm = self._lm[seqs] = cost._lm_head(seqs)
            check = True
        if self._decode_linear or n_decode == 0:
            attn_decode = cost._attn_coef * float(decode_ctx)
        else:
            attn_decode = float(cost._decode_attn(n_decode, np.array([float(decode_ctx)]))[0])
        attn_decode += cost._attn_floor if n_decode else 0.0
        ops = (*dense, sum(parts), attn_decode, lm)
        engine_cpu, launch, eager = engine_terms(cost, prefill, n_decode, sum(ops) - dense[i])
        got: float = sum((*ops, engine_cpu, launch, eager))
        if check:
            real = cost.iteration(prefill, n_decode, decode_ctx)
            if real.hex() != got.hex():
                self._diverge(prefill, n_decode, decode_ctx, got, real)
                return real
        if self._decode_linear or n_decode == 0:
            self._row(tokens, n_decode, len(prefill), dense, lm, (sum(parts), float(decode_ctx), got))
        return got

    def chunk_steps(
        self, t: float, q: int, c0: int, n: int, ctx: int, k: int, last: int
    ) -> tuple[list[float], list[float]]:
        """End times and durations of k chunk-run steps from `t`: step j prefills (q, c0 + q·j) — the last one
        `last` tokens — beside n decodes of context sum ctx + n·j; each `iteration(...)` of stepping, exactly.

        Within a run the dense operators, LM head and engine terms see the same token and sequence counts, so every
        step is priced from the shape's row (`_row`), as `iteration`'s row path prices it; a shape without a row yet
        prices step 0 through `iteration`, which makes it (or prices in full, when the shape's sum does not split)."""
        rows = self._one.get(n) if self._decode_linear and not self.diverged else None  # this decode count's rows
        row = rows.get(q) if rows is not None and k > 1 else None
        times: list[float] = []
        durations: list[float] = []
        if row is None:  # step 0 through `iteration`, which makes the row (`_row`, `_derive_row`)
            if self.spy is not None:
                self.spy("iteration")
            dt0 = self.iteration([(q if k > 1 else last, c0)], n, ctx)
            t = t + dt0
            times.append(t)
            durations.append(dt0)
            if k > 1 and not self.diverged and self._decode_linear:
                rows = self._one.get(n)  # (made by that `iteration` when the shape had none)
                row = rows.get(q) if rows is not None else None
        if row is not None:  # `_row_sum` inlined (the same operations): this loop prices most chunked steps
            t = _row_steps(self, row, times, durations, t, q, c0, n, ctx, k if last == q else k - 1)
            tail = rows.get(last) if last != q and rows is not None and not self.diverged else None
            if tail is not None:  # the shorter last chunk's shape was priced before: `iteration`'s row path
                p = self._attn(last, c0 + q * (k - 1))
                dt = _row_sum(tail, p, self.cost._attn_coef * float(ctx + n * (k - 1)))
                times.append(t + dt)
                durations.append(dt)
        for i in range(len(times), k):  # no row (or the shorter last chunk): as stepping prices it
            if self.spy is not None:
                self.spy("iteration")
            dt = self.iteration([(q if i < k - 1 else last, c0 + q * i)], n, ctx + n * i)
            t = t + dt
            times.append(t)
            durations.append(dt)
        return times, durations

    def _diverge(self, prefill: Chunks, n_decode: int, decode_ctx: int, got: float, real: float) -> None:
        """The mirror no longer matches `RooflineCost.breakdown`: price with the real model from now on."""
        self.diverged = True  # `iteration` hands every call to the real model from now on, for good
        warnings.warn(
            f"sim/costmodel/memo.py mirrors RooflineCost.breakdown no longer ({got!r} != {real!r} for prefill "
            f"{list(prefill)}, {n_decode} decodes, context {decode_ctx}): pricing unmemoised; bring it in line",
            RuntimeWarning,
            stacklevel=3,
        )


def _row_steps(
    memo: MemoCost,
    row: Row,
    times: list[float],
    durations: list[float],
    t: float,
    q: int,
    c0: int,
    n: int,
    ctx: int,
    stop: int,
) -> float:
    """Append steps `len(times)`..`stop - 1` of a chunk run priced from `row`: step j
    prefills (q, c0 + q·j) beside n decodes of context sum ctx + n·j; `_row_sum`'s operations, inlined. Returns the
    last end time."""
    head, over, lm, cpu, lim, floor, hidden, eager = row
    direct = memo._direct  # compiled: prefill attention computed, not looked up (`MemoCost._direct`)
    pre = memo._pre(q) if direct is None else {}  # this chunk size's prefill attention, by cached context
    attn, coef = memo._prefill_attn, memo.cost._attn_coef
    # `pre.get` and `.append` called in place: compiled (mypyc) they are C primitives, a bound method in a local
    # is a generic call
    for j in range(len(times), stop):
        c = c0 + q * j
        if direct is not None:
            p = direct.at(q, c)
        elif (got := pre.get(c)) is not None:
            p = got
        else:  # `MemoCost._attn_new`, inlined
            p = attn(q, c)
            if memo._n_prefill < _MAX_ENTRIES:
                pre[c] = p
                memo._n_prefill += 1
        # `coef * (int)` converts the int exactly as `float()` does (contexts < 2^53), and `x if x > 0.0 else 0.0`
        # is `max(0.0, x)` (NaN and -0.0 included): the same floats without two builtin calls per step
        s = head + p + (coef * (ctx + n * j) + floor) + lm
        kernels = s - over
        if hidden:
            x = cpu - kernels
            dt = s + (x if x > 0.0 else 0.0)
        else:
            dt = s + cpu
        if lim is None:
            dt = dt + 0.0 + eager
        else:
            x = lim - kernels
            dt = dt + (x if x > 0.0 else 0.0) + eager
        t = t + dt
        times.append(t)
        durations.append(dt)
    return t


def _row_sum(row: Row, p: float, attn: float) -> float:
    """An iteration from its cached row (`MemoCost._row`), prefill attention `p` (summed over chunks) and decode
    attention `attn` (before its floor): `sum()`'s additions, in its order, and `_engine_s`'s engine terms (the
    CPU step, only beyond the kernels with async scheduling; the launch-bound excess)."""
    head, over, lm, cpu, lim, floor, hidden, eager = row
    s = head + p + (attn + floor) + lm
    kernels = s - over
    if hidden:  # `max(0.0, x)` as `x if x > 0.0 else 0.0`: the same float (NaN and -0.0 included), no call
        x = cpu - kernels
        cpu = x if x > 0.0 else 0.0
    if lim is None:
        return s + cpu + 0.0 + eager
    x = lim - kernels
    return s + cpu + (x if x > 0.0 else 0.0) + eager


# (new, cached) tokens on which `_plain_prefill_attn` is checked against the model's own `_prefill_attn`
ATTN_PROBES = ((0, 0), (1, 0), (7, 7), (300, 1024), (512, 0), (100, 2000), (8192, 8192), (16, 32768))


class PlainAttn:
    """`_plain_prefill_attn`'s pricing; `consts`: flops, floor, e_max, q_half, k_half as floats (as mixed arithmetic
    converts ints). A class, not a closure: compiled, `at` is a direct call, unboxed (`MemoCost._direct`)."""

    def __init__(self, layers: int, hq: int, consts: tuple[float, float, float, float, float]) -> None:
        self.layers, self.hq = layers, hq
        self.flops, self.floor, self.e_max, self.q_half, self.k_half = consts

    def at(self, q: int, c: int) -> float:
        if q <= 0:  # (`RooflineCost._prefill_attn`'s float operations on this path, in its order)
            return self.layers * 0.0
        k = c + q
        e = self.e_max * q / (q + self.q_half) * k / (k + self.k_half)
        return self.layers * (self.floor + 4.0 * self.hq * q * k / (self.flops * e))

    def __call__(self, q: int, c: int) -> float:
        return self.at(q, c)


def _plain_prefill_attn(cost: RooflineCost) -> PlainAttn | None:
    """`RooflineCost._prefill_attn` where it prices with the measured FlashAttention efficiency (no learned prefill
    grid), its constants read once: the same float operations in the same order, without two calls, the unused
    roofline terms and attribute lookups. None where the model prices otherwise, or where a probe differs by a bit."""
    eff = getattr(cost, "attn_eff", None)
    if eff is None or type(eff).prefill_s is not AttentionEfficiency.prefill_s:
        return None
    if type(cost)._prefill_attn is not RooflineCost._prefill_attn or (
        cost.curves and cost._attn_grids.get("prefill") is not None
    ):
        return None
    consts = (float(cost.attn_peak_flops), float(eff.prefill_floor_s), float(eff.prefill_eff_max))
    attn = PlainAttn(cost.L, cost.hq, (*consts, float(eff.prefill_q_half), float(eff.prefill_k_half)))
    if any(attn.at(q, c).hex() != float(cost._prefill_attn(q, c)).hex() for q, c in ATTN_PROBES):
        return None
    return attn


def memoised(cost: CostModel) -> CostModel:
    """`cost` with exact per-term memoisation when it is a roofline/table model this file mirrors."""
    kind = type(cost)
    if isinstance(cost, RooflineCost) and kind.breakdown is _MIRRORED and kind.iteration is RooflineCost.iteration:
        memo = MemoCost(cost)
        if memo.agrees():
            return memo
        return cost
    return cost

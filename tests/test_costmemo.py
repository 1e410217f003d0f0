"""The memoised pricing path (`sim.costmodel.memo`) gives bit-identical iteration times.

Any difference — one ulp — would change event times and therefore every output byte; so the property is
exact float equality with the unwrapped model's `iteration()`, on random batches, for the
cost-model variants whose code paths differ (learned curves or constant efficiency, tp 1 / 2 / 4 with and
without measured collectives, a fitted per-sequence overhead, a mixture-of-experts model, the table kind).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import sim
from hwprofiles import catalog
from sim.costmodel.build import build_physical
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.memo import SEQUENTIAL_SUM, MemoCost, memoised
from sim.costmodel.models import (
    Chunks,
    LinearCost,
    LinearCostConfig,
    ProfileParams,
    RooflineCost,
    RooflineCostConfig,
    TableCostConfig,
    decode_coeffs,
)


def _variants() -> dict[str, RooflineCost]:
    a100, h100 = catalog.gpu("a100-80g"), catalog.gpu("h100-sxm")
    code, llama, moe = catalog.model("codellama-34b"), catalog.model("llama-3.1-8b"), catalog.model("mixtral-8x7b")
    seq = RooflineCost(
        RooflineCostConfig(efficiency="constant"),
        llama,
        h100,
        2,
        params=ProfileParams(iteration_overhead_s=1e-3, seq_overhead_s=3.7e-6, comm_latency_s=2e-6),
    )
    return {
        "curves-a100-tp2": build_physical(RooflineCostConfig(), code, a100, 2),
        "curves-h100-tp1": build_physical(RooflineCostConfig(), llama, h100, 1),
        "constant-tp4": build_physical(RooflineCostConfig(efficiency="constant"), llama, h100, 4),
        "seq-overhead": seq,
        "moe-tp2": build_physical(RooflineCostConfig(), moe, h100, 2),
        "table": build_physical(TableCostConfig(), llama, h100, 1),
        # a serving-engine model: CPU time per step and launch-bound excess outside graph-captured sizes
        "engine-eager": build_physical(
            RooflineCostConfig(), llama, h100, 2, engine=ServingEngineConfig(cuda_graph_max_batch=0)
        ),
        "engine-graphs": build_physical(RooflineCostConfig(), code, a100, 2, engine=ServingEngineConfig()),
    }


VARIANTS = _variants()
chunks = st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 32768)), max_size=6)


@pytest.mark.parametrize("name", list(VARIANTS))
@settings(max_examples=60, deadline=None)
@given(prefill=chunks, n_decode=st.integers(0, 300), per_seq_ctx=st.integers(1, 8000))
def test_memoised_iteration_is_bit_identical(name: str, prefill: list, n_decode: int, per_seq_ctx: int) -> None:
    assume(prefill or n_decode)  # an iteration has work (the engine never prices an empty batch)
    cost = VARIANTS[name]
    memo = memoised(cost)
    if not isinstance(memo, MemoCost):  # a subclass this file does not mirror (StructuredCost) is left alone
        assert memo is cost and type(cost).breakdown is not RooflineCost.breakdown
        return
    ctx = n_decode * per_seq_ctx if n_decode else 0
    want = cost.iteration(prefill, n_decode, ctx)
    got = memo.iteration(prefill, n_decode, ctx)
    again = memo.iteration(prefill, n_decode, ctx)  # from the caches this time
    assert math.isfinite(got) and got > 0
    assert got.hex() == want.hex() and again.hex() == want.hex()
    assert not memo.diverged  # exact through the mirror itself, not through its fallback


@pytest.mark.parametrize("name", list(VARIANTS))
@settings(max_examples=40, deadline=None)
@given(
    q=st.integers(1, 2048),
    c0=st.integers(0, 16384),
    n=st.integers(0, 300),
    per_seq_ctx=st.integers(1, 8000),
    k=st.integers(1, 40),
    last=st.integers(1, 2048),
    t=st.floats(0.0, 1e4),
)
def test_chunk_run_pricing_is_stepping_pricing(
    name: str, q: int, c0: int, n: int, per_seq_ctx: int, k: int, last: int, t: float
) -> None:
    """`MemoCost.chunk_steps` (a cached dense sum plus the terms that vary) gives, step after step, exactly the
    floats of `RooflineCost.iteration` on each step's batch, accumulated from `t` as stepping accumulates them."""
    cost = VARIANTS[name]
    memo = memoised(cost)
    if not isinstance(memo, MemoCost):
        return
    last = min(last, q) if k > 1 else q  # a run's last step is a full chunk or the prompt's shorter remainder
    ctx = n * per_seq_ctx
    times, durations = memo.chunk_steps(t, q, c0, n, ctx, k, last)
    clock = t
    for j in range(k):
        dt = cost.iteration([(q if j < k - 1 else last, c0 + q * j)], n, ctx + n * j)
        clock = clock + dt
        assert durations[j].hex() == dt.hex() and times[j].hex() == clock.hex()
    assert len(times) == len(durations) == k and not memo.diverged


@pytest.mark.parametrize("name", list(VARIANTS))
@settings(max_examples=40, deadline=None)
@given(
    qs=st.lists(st.integers(1, 2048), min_size=1, max_size=3),
    n=st.integers(0, 300),
    shapes=st.lists(st.tuples(st.integers(0, 16384), st.integers(1, 8000)), min_size=2, max_size=5),
)
def test_rows_price_every_context_exactly(name: str, qs: list[int], n: int, shapes: list[tuple[int, int]]) -> None:
    """An iteration of a shape (tokens, decodes, chunks) seen before is priced from its cached row
    (`MemoCost._row`): for other cached prefixes and decode contexts too, the floats are the real model's."""
    cost = VARIANTS[name]
    memo = memoised(cost)
    if not isinstance(memo, MemoCost):
        return
    for c, per_seq in shapes:
        prefill = [(q, c + 7 * i) for i, q in enumerate(qs)]
        want = cost.iteration(prefill, n, n * per_seq)
        assert memo.iteration(prefill, n, n * per_seq).hex() == want.hex()
    uses_rows = SEQUENTIAL_SUM and (memo._decode_linear or n == 0)
    assert ((sum(qs) + n, n, len(qs)) in memo._rows) == uses_rows  # the later shapes went through the row
    assert not memo.diverged


@pytest.mark.parametrize("name", list(VARIANTS))
@settings(max_examples=40, deadline=None)
@given(
    q=st.integers(2, 2048),
    n=st.integers(1, 300),
    split=st.integers(1, 2047),
    contexts=st.tuples(st.integers(0, 16384), st.integers(0, 16384), st.integers(1, 8000)),
)
def test_derived_rows_price_as_the_full_path(
    name: str, q: int, n: int, split: int, contexts: tuple[int, int, int]
) -> None:
    """A shape whose token and sequence counts were priced before under another split (one chunk beside n decodes,
    then two chunks beside n - 1: the same tokens and sequences) gets its row derived (`MemoCost._derive_row`),
    without `_iteration`; its price is the real model's, bit for bit, as in a memo that priced it in full."""
    cost = VARIANTS[name]
    memo, fresh = memoised(cost), memoised(cost)
    if not isinstance(memo, MemoCost) or not isinstance(fresh, MemoCost):
        return
    c1, c2, per_seq = contexts
    first = [(q, c1)]
    a = min(split, q)  # two chunks of q + 1 tokens in all, beside one decode fewer
    second = [(a, c1), (q + 1 - a, c2)]
    assert memo.iteration(first, n, n * per_seq).hex() == cost.iteration(first, n, n * per_seq).hex()
    calls: list[str] = []
    memo.spy = lambda name: calls.append(name) if name == "_iteration" else None  # count term-by-term pricing
    ctx = (n - 1) * per_seq
    want = cost.iteration(second, n - 1, ctx)
    got = memo.iteration(second, n - 1, ctx)
    assert got.hex() == want.hex() == fresh.iteration(second, n - 1, ctx).hex()
    linear = SEQUENTIAL_SUM and memo._decode_linear and memo._derive
    assert ((q + n, n - 1, 2) in memo._rows) == bool(linear or (SEQUENTIAL_SUM and memo._derive and n == 1))
    if (q + n, n - 1, 2) in memo._rows:
        assert not calls  # derived, not priced term by term
    assert not memo.diverged


@pytest.mark.parametrize("name", list(VARIANTS))
@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(1, 48), st.integers(0, 4096)), min_size=1, max_size=3),
            st.integers(0, 12),
            st.integers(1, 4000),
        ),
        min_size=2,
        max_size=40,
    )
)
def test_a_random_workload_prices_every_iteration_as_the_real_model(name: str, shapes: list) -> None:
    """Few distinct token and sequence counts, so rows are made, derived and reused in a random order: every
    price is the real model's (the property the whole memo stands on, over a sequence rather than one call)."""
    cost = VARIANTS[name]
    memo = memoised(cost)
    for prefill, n, per_seq in shapes:
        assert memo.iteration(prefill, n, n * per_seq).hex() == cost.iteration(prefill, n, n * per_seq).hex()
    assert not getattr(memo, "diverged", False)


@pytest.mark.skipif(not SEQUENTIAL_SUM, reason="sum() compensates (Python >= 3.12): runs are priced step by step")
def test_chunk_run_pricing_takes_the_fast_path() -> None:
    """The run is priced from the cached dense sum (not step by step through `iteration`) where it may be."""
    memo = memoised(VARIANTS["engine-eager"])
    assert isinstance(memo, MemoCost)
    calls: list[str] = []
    memo.spy = lambda name: calls.append(name) if name == "iteration" else None  # steps priced by `iteration`
    times, _ = memo.chunk_steps(0.0, 256, 0, 40, 40 * 700, 12, 256)
    assert len(times) == 12 and len(calls) == 1  # step 0 only: it vouches for the cached sum


@pytest.mark.parametrize("name", list(VARIANTS))
@settings(max_examples=30, deadline=None)
@given(
    q=st.integers(2, 1024),
    c0=st.integers(0, 8192),
    n=st.integers(0, 200),
    per_seq_ctx=st.integers(1, 4000),
    k=st.integers(2, 30),
    cut=st.integers(1, 1023),
    shift=st.integers(1, 5000),
    t=st.floats(0.0, 1e4),
)
def test_primed_chunk_runs_price_from_rows(
    name: str, q: int, c0: int, n: int, per_seq_ctx: int, k: int, cut: int, shift: int, t: float
) -> None:
    """A run whose full-chunk and remainder shapes were priced before (a later prompt of the same batch size) is
    priced from their rows alone, step 0 and the remainder included, and still gives stepping's floats."""
    cost = VARIANTS[name]
    memo = memoised(cost)
    if not isinstance(memo, MemoCost):
        return
    last = 1 + cut % q  # the prompt's shorter remainder (or a full chunk when it equals q)
    ctx = n * per_seq_ctx
    memo.chunk_steps(t, q, c0, n, ctx, k, last)  # primes the rows of both shapes
    calls: list[str] = []
    memo.spy = calls.append  # count the steps priced through `iteration` (and any term-by-term pricing)
    c1, ctx1 = c0 + shift, ctx + n * shift  # other cached prefixes and contexts: new prefill attention terms
    times, durations = memo.chunk_steps(t, q, c1, n, ctx1, k, last)
    clock = t
    for j in range(k):
        dt = cost.iteration([(q if j < k - 1 else last, c1 + q * j)], n, ctx1 + n * j)
        clock = clock + dt
        assert durations[j].hex() == dt.hex() and times[j].hex() == clock.hex()
    rows = SEQUENTIAL_SUM and memo._decode_linear and not memo.diverged
    assert (not calls) == bool(rows and (q + n, n, 1) in memo._rows and (last + n, n, 1) in memo._rows)
    assert not memo.diverged


@pytest.mark.parametrize("name", list(VARIANTS))
def test_memoised_decode_coeffs_match(name: str) -> None:
    cost = VARIANTS[name]
    memo = memoised(cost)
    for n in (1, 7, 64, 255, 7):
        assert decode_coeffs(memo, n) == decode_coeffs(cost, n)


def test_memo_sees_a_changed_term() -> None:
    """The comparison above can fail: a model whose LM head differs prices differently through the memo."""
    llama, h100 = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    a = MemoCost(build_physical(RooflineCostConfig(), llama, h100, 1))
    b = MemoCost(build_physical(RooflineCostConfig(), llama.model_copy(update={"vocab_size": 256000}), h100, 1))
    assert a.iteration([(512, 0)], 3, 3000) != b.iteration([(512, 0)], 3, 3000)


def test_other_models_and_subclasses_are_not_wrapped() -> None:
    lin = LinearCost(LinearCostConfig(base_s=0.01))
    assert memoised(lin) is lin

    class Custom(RooflineCost):
        def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
            return {"all": 1.0}

    c = Custom(RooflineCostConfig(), catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm"), 1)
    assert memoised(c) is c


def _drifted(extra: dict[str, float], when: Any = None) -> type[RooflineCost]:
    """RooflineCost with `extra` terms in its breakdown (only where `when(prefill, n_decode)` holds) — what a
    change to the real breakdown that the memo's mirror missed would look like."""
    real = RooflineCost.breakdown

    def breakdown(self: RooflineCost, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        ops = real(self, prefill, n_decode, decode_ctx)
        if when is None or when(prefill, n_decode):
            ops.update(extra)
        return ops

    return breakdown  # type: ignore[return-value]  # a function to patch onto the class


def test_a_drifted_breakdown_is_caught_when_the_memo_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    llama, h100 = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    cost = build_physical(RooflineCostConfig(), llama, h100, 2)
    monkeypatch.setattr(RooflineCost, "breakdown", _drifted({"new_term": 1e-5}, lambda p, n: n > 100))
    monkeypatch.setattr("sim.costmodel.memo._MIRRORED", RooflineCost.breakdown)  # as if edited in place
    with pytest.warns(RuntimeWarning, match="mirrors RooflineCost.breakdown no longer"):
        got = memoised(cost)
    assert got is cost  # unwrapped: priced by the real model
    with pytest.warns(RuntimeWarning):
        assert not MemoCost(cost).agrees()


def test_a_drift_outside_the_probes_is_caught_at_its_first_new_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    llama, h100 = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    cost = build_physical(RooflineCostConfig(), llama, h100, 1)
    monkeypatch.setattr(RooflineCost, "breakdown", _drifted({"new_term": 3e-6}, lambda p, n: n == 37))
    monkeypatch.setattr("sim.costmodel.memo._MIRRORED", RooflineCost.breakdown)
    memo = memoised(cost)
    assert isinstance(memo, MemoCost)  # the probes do not see it
    assert memo.iteration([(100, 0)], 3, 3000).hex() == cost.iteration([(100, 0)], 3, 3000).hex()
    with pytest.warns(RuntimeWarning, match="pricing unmemoised"):
        first = memo.iteration([(100, 0)], 37, 37 * 500)
    assert memo.diverged
    assert first.hex() == cost.iteration([(100, 0)], 37, 37 * 500).hex()
    for prefill, n in (([(64, 64)], 37), ([(100, 0)], 3), ([(9, 0), (5, 5)], 37)):
        assert memo.iteration(prefill, n, n * 700).hex() == cost.iteration(prefill, n, n * 700).hex()


def _pool_cost(kind: dict[str, Any], tp: int, pp: int = 1) -> Any:
    from sim.cluster.pools import build_cost_model

    over = [f"cost_model={kind}", f"cluster.tp={tp}", f"cluster.pp={pp}", "model=llama-3.1-8b"]
    return build_cost_model(sim.load_scenario("scenarios/quickstart.yaml", over))


ALL_KINDS: dict[str, tuple[dict[str, Any], int, int]] = {
    "linear": ({"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 1e-4, "per_decode_seq_s": 2e-4}, 1, 1),
    "roofline-tp2": ({"kind": "roofline"}, 2, 1),
    "roofline-pp2": ({"kind": "roofline"}, 1, 2),
    "table": ({"kind": "table"}, 1, 1),
}


def test_every_registered_cost_kind_is_covered() -> None:
    from sim.core.registry import COST_MODELS

    assert {k.split("-")[0] for k in ALL_KINDS} == set(COST_MODELS.kinds())


@pytest.mark.parametrize("name", list(ALL_KINDS))
@settings(max_examples=30, deadline=None)
@given(prefill=chunks, n_decode=st.integers(0, 300), per_seq_ctx=st.integers(1, 8000))
def test_every_cost_kind_prices_the_same_through_the_memo(
    name: str, prefill: list, n_decode: int, per_seq_ctx: int
) -> None:
    """What the engine prices with (`memoised` of the scenario's cost model) equals the model itself, bit for
    bit, for every registered kind: wrapped (roofline, table) or passed through (linear, a pipeline)."""
    assume(prefill or n_decode)
    kind, tp, pp = ALL_KINDS[name]
    cost = _pool_cost(kind, tp, pp)
    memo = memoised(cost)
    ctx = n_decode * per_seq_ctx if n_decode else 0
    assert memo.iteration(prefill, n_decode, ctx).hex() == cost.iteration(prefill, n_decode, ctx).hex()
    assert isinstance(memo, MemoCost) == (name in ("roofline-tp2", "table"))
    assert not getattr(memo, "diverged", False)

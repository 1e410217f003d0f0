"""`Cohort.blocks`: the new KV blocks its members need over a window of steps, counted from phase aggregates,
equals the count member by member (a member needs a block before a step that starts at a full block)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.cohort import Cohort
from sim.core.request import Request


@settings(max_examples=300, deadline=None)
@given(
    block_size=st.sampled_from([1, 2, 3, 16, 32]),
    kvs=st.lists(st.integers(1, 5000), min_size=0, max_size=40),
    before=st.integers(0, 70),
    start=st.integers(0, 3),
    count=st.integers(-1, 140),
)
def test_blocks_over_a_window_equal_the_member_by_member_count(
    block_size: int, kvs: list[int], before: int, start: int, count: int
) -> None:
    co = Cohort(block_size)
    co.steps = before  # joins happen after some steps: phases are relative to the cohort's step count
    members = []
    for i, kv in enumerate(kvs):
        r = Request(i, 0.0, kv, 10_000)
        r.kv_tokens, r.prefill_done, r.generated, r.last_token = kv, kv, 1, 0.0
        co.join(r)
        members.append(r)
    want = sum(1 for r in members for j in range(max(count, 0)) if (r.kv_tokens + start + j) % block_size == 0)
    assert co.blocks(start, count) == want


@settings(max_examples=200, deadline=None)
@given(
    block_size=st.sampled_from([1, 3, 16]),
    kvs=st.lists(st.integers(1, 3000), min_size=1, max_size=30),
    k=st.integers(1, 120),
    free=st.integers(0, 200),
    cut=st.integers(0, 120),
    join=st.booleans(),
)
def test_a_run_takes_the_blocks_block_limit_counted(
    block_size: int, kvs: list[int], k: int, free: int, cut: int, join: bool
) -> None:
    """`block_limit` remembers the new blocks of the steps it allows; `step` over exactly those steps returns them,
    and over fewer steps (a cut), or after the membership changed, counts afresh: always `blocks(1, k - 1)`."""
    from sim.core.recorder import LogHistogram

    co = Cohort(block_size)
    for i, kv in enumerate(kvs):
        r = Request(i, 0.0, kv, 10_000)
        r.kv_tokens, r.prefill_done, r.generated, r.last_token = kv, kv, 1, 0.0
        co.join(r)
    co.reserved = True
    allowed = co.block_limit(k, free)
    assert 1 <= allowed <= k and co.blocks(1, allowed - 1) <= free
    if join:  # a member joins between the plan and the step: the remembered count is stale
        r = Request(len(kvs), 0.0, 7, 10_000)
        r.kv_tokens, r.prefill_done, r.generated, r.last_token = 7, 7, 1, 0.0
        co.join(r)
        co.reserved = True
    ran = allowed if cut == 0 else max(1, min(allowed, cut))
    want = co.blocks(1, ran - 1) if ran > 1 else 0
    new, _ = co.step(ran, 1.0, float(ran), LogHistogram())
    assert new == want

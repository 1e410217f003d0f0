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

"""The inter-token-latency histogram (`sim.core.recorder.LogHistogram`) bins, counts and sums exactly.

Each value x > 0 goes to bin ⌊(log10 x − LO)·BINS_PER_DECADE⌋ + 1 (clipped to the bins), x ≤ 0 to bin 0, with
its weight; the bulk flush must give what that formula gives value by value, and the mean is Σ x·w / Σ w.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.recorder import LogHistogram

H = LogHistogram


def _bin(x: float) -> int:
    if x <= 0:
        return 0
    i = math.floor((math.log10(max(x, 1e-300)) - H.LO) * H.BINS_PER_DECADE) + 1
    return min(max(i, 0), int((H.HI - H.LO) * H.BINS_PER_DECADE) + 1)


values = st.one_of(st.floats(1e-9, 1e6), st.just(0.0), st.floats(-1.0, 0.0), st.sampled_from([1e-6, 1.0, 1e4]))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(values, st.integers(1, 500)), min_size=1, max_size=60))
def test_bins_counts_and_mean(pairs: list[tuple[float, int]]) -> None:
    h = LogHistogram()
    for x, w in pairs:
        h.add_one(x, w)
    want = [0.0] * h.nbins
    for x, w in pairs:
        want[_bin(x)] += w
    assert h.count == sum(w for _, w in pairs)
    assert h.counts.tolist() == want
    assert math.isclose(h.mean(), sum(x * w for x, w in pairs) / h.count, rel_tol=1e-12, abs_tol=1e-300)


def test_gaps_are_consecutive_differences() -> None:
    h = LogHistogram()
    times = [1.0, 1.25, 1.75, 2.0, 9.0]
    h.add_gaps(times, 4, 3)  # the gaps of the first 4 times, each counted 3 times
    assert h.count == 9
    assert math.isclose(h.mean(), 1.0 / 3)
    assert h.counts[_bin(0.25)] == 6 and h.counts[_bin(0.5)] == 3

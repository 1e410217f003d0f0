"""The inter-token-latency histogram (`sim.core.recorder.LogHistogram`) bins, counts and sums exactly.

Each value x > 0 goes to bin ⌊(log10 x − LO)·BINS_PER_DECADE⌋ + 1 (clipped to the bins), x ≤ 0 to bin 0, with
its weight; the bulk flush must give what that formula gives value by value, and the mean is Σ x·w / Σ w.
"""

from __future__ import annotations

import math

import numpy as np
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


class _PerValueWeights(LogHistogram):
    """The reference buffering (before run-length weights): one float weight per value, flushed the same way."""

    def __init__(self) -> None:
        super().__init__()
        self._w: list[float] = []

    def add(self, x: np.ndarray, weight: int = 1) -> None:
        if weight:
            self._values.extend(x.tolist())
            self._w.extend([float(weight)] * len(x))
            if len(self._values) >= self.FLUSH:
                self._flush()

    def add_gaps(self, times: list[float], k: int, weight: int) -> None:
        self._values.extend(times[i] - times[i - 1] for i in range(1, k))
        self._w.extend([float(weight)] * (k - 1))
        if len(self._values) >= self.FLUSH:
            self._flush()

    def add_one(self, x: float, weight: int = 1) -> None:
        self._values.append(x)
        self._w.append(float(weight))
        if len(self._values) >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._values:
            return
        self._weights, self._counts = self._w, [1] * len(self._w)  # per value: the run-length form degenerates
        super()._flush()
        self._w = []


ops = st.lists(
    st.one_of(
        st.tuples(st.just("one"), values, st.integers(0, 300)),
        st.tuples(st.just("gaps"), st.lists(st.floats(0.0, 50.0), min_size=1, max_size=12), st.integers(0, 300)),
        st.tuples(st.just("add"), st.lists(values, max_size=9), st.integers(0, 300)),
    ),
    max_size=40,
)


@settings(max_examples=120, deadline=None)
@given(ops=ops, flush=st.sampled_from([1, 3, 7, 1 << 16]))
def test_run_length_weights_bin_and_sum_as_one_weight_per_value(ops: list, flush: int) -> None:
    """Buffering a call's weight once (with its count) gives the counts, the sum (flushed at the same values, in
    the same order) and the total weight that one weight per value gives, bit for bit."""
    fast, ref = LogHistogram(), _PerValueWeights()
    fast.FLUSH = ref.FLUSH = flush
    for kind, arg, w in ops:
        for h in (fast, ref):
            if kind == "one":
                h.add_one(arg, w)
            elif kind == "gaps":
                times = list(np.cumsum(arg).tolist())
                h.add_gaps(times, len(times), w)
            else:
                h.add(np.asarray(arg, dtype=np.float64), w)
    assert fast.count == ref.count
    assert fast.total.hex() == ref.total.hex()
    assert np.array_equal(fast.counts, ref.counts)

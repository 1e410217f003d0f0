"""The pure-Python iteration path's shortcuts (benchmarks/SPEED.md, s14-pure) do what the plain code did.

- the memo's single-chunk rows by int keys (`MemoCost._one`) are the `_rows` entries of those shapes.
"""

from __future__ import annotations

from hwprofiles import catalog
from sim.costmodel.build import build_physical
from sim.costmodel.memo import MemoCost, memoised
from sim.costmodel.models import RooflineCostConfig


def test_single_chunk_rows_by_int_keys_are_the_tuple_keyed_rows() -> None:
    cost = build_physical(RooflineCostConfig(), catalog.model("codellama-34b"), catalog.gpu("a100-80g"), 2)
    memo = memoised(cost)
    assert isinstance(memo, MemoCost)
    for q, n in ((512, 0), (500, 12), (300, 12), (7, 40)):
        for j in range(3):
            assert (
                memo.iteration([(q, 100 * j)], n, n * 900 + j).hex()
                == cost.iteration([(q, 100 * j)], n, n * 900 + j).hex()
            )
    # equal, not identical: compiled, mypyc unboxes a row's tuple and boxes a new one at each read
    single = {(q + n, n, 1): row for n, by_q in memo._one.items() for q, row in by_q.items()}
    assert single and single == {k: v for k, v in memo._rows.items() if k[2] == 1}

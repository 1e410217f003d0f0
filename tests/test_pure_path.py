"""The pure-Python iteration path's shortcuts (benchmarks/SPEED.md, s14-pure) do what the plain code did.

- `drop`: a completion leaves `running` as `list.remove` leaves it, found by bisecting admission tickets, and by a
  scan where something appended out of ticket order;
- the memo's single-chunk rows by int keys (`MemoCost._one`) are the `_rows` entries of those shapes.
"""

from __future__ import annotations

import random

import pytest

from hwprofiles import catalog
from sim.core.request import RUN_SEQ, Request, drop
from sim.costmodel.build import build_physical
from sim.costmodel.memo import MemoCost, memoised
from sim.costmodel.models import RooflineCostConfig


def _admitted(n: int) -> list[Request]:
    reqs = [Request(i, 0.0, 10, 10) for i in range(n)]
    for r in reqs:  # as `BatchView.admit` tickets them
        r.run_seq = next(RUN_SEQ)
    return reqs


@pytest.mark.parametrize("seed", range(5))
def test_drop_removes_as_list_remove_does(seed: int) -> None:
    rng = random.Random(seed)
    running = _admitted(50)
    plain = list(running)
    while running:
        req = rng.choice(running)
        drop(running, req)
        plain.remove(req)
        assert [id(r) for r in running] == [id(r) for r in plain]
        if rng.random() < 0.3:  # admissions in between (preempted ones come back with a new ticket)
            new = _admitted(1)[0]
            running.append(new)
            plain.append(new)


def test_drop_scans_when_running_is_out_of_ticket_order() -> None:
    a, b, c = _admitted(3)
    running = [c, a, b]  # appended past `admit`: the bisection cannot find them all
    for req in (a, c, b):
        drop(running, req)
        assert req not in running
    assert running == []


def test_drop_of_an_absent_request_raises_as_list_remove() -> None:
    a, b = _admitted(2)
    with pytest.raises(ValueError):
        drop([a], b)


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
    single = {(q + n, n, 1): row for n, by_q in memo._one.items() for q, row in by_q.items()}
    assert single and single == {k: v for k, v in memo._rows.items() if k[2] == 1}
    assert all(single[k] is memo._rows[k] for k in single)

"""The numpy `_pivot` of the efficiency curves equals the pandas groupby-median formulation it replaced
(start-up speed, issue 14): same medians (odd and even counts, ties), same shapes, same union grid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprofiles.efficiency import _pivot, _split


def _pandas_pivot(df: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The former implementation, verbatim in effect: groupby median, then per-shape interpolation."""
    g = df.groupby([*keys, "M"])["lr"].median().reset_index()
    grid = np.unique(g["M"].to_numpy(np.float64))
    lgrid = np.log(grid)
    shapes, rows = [], []
    for key, s in g.groupby(keys):
        key = key if isinstance(key, tuple) else (key,)
        shapes.append([math.log(float(v)) for v in key])
        s = s.sort_values("M")
        rows.append(np.interp(lgrid, np.log(s["M"].to_numpy(np.float64)), s["lr"].to_numpy(np.float64)))
    return np.array(shapes), lgrid, np.array(rows)


rows_st = st.lists(
    st.tuples(
        st.sampled_from([512.0, 4096.0, 5120.0]),
        st.sampled_from([1024.0, 8192.0]),
        st.sampled_from([1.0, 2.0, 16.0, 128.0, 136.0]),
        st.floats(-2.0, 3.0, allow_nan=False),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(rows_st)
def test_pivot_matches_pandas_median(rows: list[tuple[float, float, float, float]]) -> None:
    k, n, m, lr = (np.array(c) for c in zip(*rows, strict=True))
    got = _pivot({"K": k, "N": n, "M": m, "lr": lr}, ["K", "N"])
    want = _pandas_pivot(pd.DataFrame({"K": k, "N": n, "M": m, "lr": lr}), ["K", "N"])
    assert got is not None
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert g.tobytes() == w.tobytes()


def test_pivot_even_count_is_mean_of_middle_two() -> None:
    """Hand case: one shape, M = 8 measured four times and M = 64 three times."""
    cols = {
        "W": np.full(7, 4096.0),
        "M": np.array([8.0, 8.0, 8.0, 8.0, 64.0, 64.0, 64.0]),
        "lr": np.array([0.4, 0.1, 0.3, 0.2, 0.9, 0.5, 0.7]),
    }
    got = _pivot(cols, ["W"])
    assert got is not None
    shapes, lgrid, lr = got
    assert shapes.tolist() == [[math.log(4096.0)]]
    assert lgrid.tolist() == [math.log(8.0), math.log(64.0)]
    assert lr.tolist() == [[(0.2 + 0.3) / 2, 0.7]]


def test_split_groups_rows_by_value_in_sorted_order() -> None:
    cols = {"op": np.array(["b", "a", "b"], dtype=object), "M": np.array([1.0, 2.0, 3.0])}
    parts = _split(cols, "op")
    assert [k for k, _ in parts] == ["a", "b"]
    assert parts[1][1]["M"].tolist() == [1.0, 3.0]
    assert _pivot({"K": np.empty(0), "N": np.empty(0), "M": np.empty(0), "lr": np.empty(0)}, ["K", "N"]) is None

"""Hypothesis strategies used by more than one test module (one definition instead of copies)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st


def examples(n: int) -> int:
    """`n` examples, or `SERVESIM_EXAMPLES` when set (a longer hunt for the simulator's property tests)."""
    return int(os.environ.get("SERVESIM_EXAMPLES", n))


def request_rows(max_arrival_s: float, max_prompt: int, max_output: int) -> st.SearchStrategy[tuple[float, int, int]]:
    """One trace row `(arrival_s, prompt_tokens, output_tokens)` (`tests.helpers.write_csv` writes a list)."""
    return st.tuples(
        st.floats(min_value=0.0, max_value=max_arrival_s, allow_nan=False),
        st.integers(min_value=1, max_value=max_prompt),
        st.integers(min_value=1, max_value=max_output),
    )


linear_costs: st.SearchStrategy[dict[str, Any]] = st.builds(
    lambda b, p, d: {"kind": "linear", "base_s": b, "per_prefill_token_s": p, "per_decode_seq_s": d},
    st.floats(1e-4, 0.02),
    st.floats(0.0, 1e-3),
    st.floats(0.0, 5e-3),
)
"""A `linear` cost-model section: base, per-prefill-token and per-decoding-sequence seconds."""


def token_pmfs(max_tokens: int, max_size: int) -> st.SearchStrategy[list[tuple[int, float]]]:
    """An unnormalised pmf of token counts: (value, weight) pairs; callers normalise the weights."""
    return st.lists(st.tuples(st.integers(1, max_tokens), st.floats(0.01, 1.0)), min_size=1, max_size=max_size)

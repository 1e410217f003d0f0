"""benchmarks/admission_reserve_check.py: the reservation bound and Little's law, by hand."""

from __future__ import annotations

import math

import pytest

from benchmarks.admission_reserve_check import littles_n, reserved_concurrency


def test_a_whole_request_reservation_admits_floor_kv_over_length_per_instance() -> None:
    # 2 instances x 9,000 tokens, requests of 1,000 + 1,000: 4 reservations each, 8 of 10 clients in service
    assert reserved_concurrency(10, 2, 9_000, 1_000, 1_000) == 8
    # 10,000 tokens each: 5 + 5 = 10, every client fits (the reservation does not bind)
    assert reserved_concurrency(10, 2, 10_000, 1_000, 1_000) == 10
    # room to spare never admits more than the clients
    assert reserved_concurrency(10, 1, 1_000_000, 1_000, 1_000) == 10
    # a request longer than an instance's KV can never be admitted
    assert reserved_concurrency(4, 3, 1_999, 1_000, 1_000) == 0


def test_littles_law_on_a_closed_loop() -> None:
    # 64 clients, decode S = 0.02 s x 511 = 10.22 s, TTFT 0.5 s: n = 64 x 10.22 / 10.72
    assert littles_n(64, 0.5, 0.02, 512) == pytest.approx(64 * 10.22 / 10.72)
    # a TTFT as long as the decode: half the clients are in service
    assert littles_n(16, 10.22, 0.02, 512) == pytest.approx(8.0)
    assert math.isnan(littles_n(8, 0.0, 0.0, 1))

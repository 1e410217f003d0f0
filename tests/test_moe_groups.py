"""Group-limited MoE routing (DeepSeek-V3/R1: top-8 experts from the top-4 of 8 groups) on the busiest EP rank."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from pydantic import ValidationError

from hwprofiles import catalog
from hwprofiles.specs import ModelSpec
from sim.costmodel import moe
from sim.costmodel.layout import Layout
from sim.costmodel.models import RooflineCostConfig
from sim.costmodel.structured import StructuredCost


def test_one_token_at_ep_equal_to_groups_by_hand() -> None:
    """One token, 256 experts in 8 groups of 32, top-4 groups, top-8 experts, EP 8 (a rank = a group): a rank's
    group is chosen w.p. 1/2, and then j of the 8 experts drawn from the 4 x 32 = 128 fall on it
    (hypergeometric); the ranks as independent: E[max] = sum_x 1 - F(x)^8."""
    pj = np.array([0.5 * comb(32, j) * comb(96, 8 - j) / comb(128, 8) if j <= 8 else 0.0 for j in range(33)])
    pj[0] += 0.5
    cdf = np.cumsum(pj)
    by_hand = float(sum(1.0 - cdf[x] ** 8 for x in range(32)))
    assert moe.busiest_active_experts(1, 8, 256, 8, 8, 4) == pytest.approx(by_hand, rel=1e-9)
    assert by_hand == pytest.approx(3.155, abs=5e-3)
    # uniform routing spreads the 8 experts over up to 8 ranks: the busiest touches fewer
    assert moe.busiest_active_experts(1, 8, 256, 8) < by_hand - 0.5


def _monte_carlo(tokens: int, ep: int, trials: int = 1500) -> float:
    """Busiest rank's distinct experts, DeepSeek routing drawn: 4 of 8 groups, then 8 of their 128 experts."""
    rng = np.random.default_rng(np.random.SeedSequence(11))
    E, G, per = 256, 8, 32
    hit = np.zeros((trials, E), dtype=bool)
    for _ in range(tokens):
        groups = np.argpartition(rng.random((trials, G)), 4, axis=1)[:, :4]
        chosen = np.zeros((trials, G), dtype=bool)
        np.put_along_axis(chosen, groups, True, axis=1)
        scores = rng.random((trials, E)) + 2.0 * ~np.repeat(chosen, per, axis=1)  # unchosen groups never win
        np.put_along_axis(hit, np.argpartition(scores, 8, axis=1)[:, :8], True, axis=1)
    return float(hit.reshape(trials, ep, E // ep).sum(axis=2).max(axis=1).mean())


@pytest.mark.parametrize(("tokens", "ep"), [(1, 8), (4, 8), (16, 8), (1, 16), (4, 4)])
def test_grouped_routing_against_monte_carlo(tokens: int, ep: int) -> None:
    """The grouped chain lies within 10 % of the drawn routing (low: the ranks are taken as independent) and
    closer to it than the uniform-routing count that ignores the groups."""
    mc = _monte_carlo(tokens, ep)
    grouped = moe.busiest_active_experts(tokens, 8, 256, ep, 8, 4)
    uniform = moe.busiest_active_experts(tokens, 8, 256, ep)
    assert mc * 0.9 < grouped <= mc * 1.02
    assert abs(grouped - mc) < abs(uniform - mc)


def test_catalogue_and_decode_step_use_the_groups() -> None:
    ds = catalog.model("deepseek-v3")
    assert (ds.n_group, ds.topk_group) == (8, 4) == (catalog.model("deepseek-r1").n_group, 4)
    exact = RooflineCostConfig(efficiency="constant", compute_efficiency=1.0, memory_efficiency=1.0)
    lay = Layout(tp=8, ep=8, moe_tp=1)
    gpu = catalog.gpu("h200")
    grouped = StructuredCost(exact, ds, gpu, 8, layout=lay)._mlp(1, 1)["moe_experts"]
    flat = StructuredCost(exact, ds.model_copy(update={"n_group": 1, "topk_group": 1}), gpu, 8, layout=lay)
    # one decode token is weight-bound: the busiest rank streams 3.155 experts' matrices, not 2.544
    assert grouped / flat._mlp(1, 1)["moe_experts"] == pytest.approx(3.155 / 2.544, rel=0.03)


def test_groups_must_divide_the_experts() -> None:
    base = catalog.model("deepseek-v3").model_dump()
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({**base, "n_group": 7})
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({**base, "topk_group": 9})

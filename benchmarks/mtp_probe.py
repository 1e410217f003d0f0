"""Price one MTP decode step of DeepSeek-R1 in servesim: the target's plain step, the verifier (k + 1 query tokens
per sequence) and the k draft-head steps, per attention-DP rank, for a few batch sizes. It is the command behind the
draft / verify numbers of COVERAGE.md's MTP subsection (and its hand checks): nothing here is fitted.

    python benchmarks/mtp_probe.py [--weights fp8] [--dp 8] [--tp 1] [--ep 8] [--engine trtllm] [--ctx 1500] [--k 3]
"""

from __future__ import annotations

import argparse
from typing import Any

from coverage_disagg import mtp_speculative

from sim.cluster.pools import _draft_cost, pool_specs
from sim.config.scenario import load_scenario
from sim.core.speculative import VerifyChunk, expected_tokens


def scenario(weights: str, layout: dict[str, int], engine: str, k: int) -> Any:
    """DeepSeek-R1 on B200, one colocated pool of `layout`, MTP k at R1's published per-position acceptance
    (coverage_disagg.MTP_ACCEPTANCE)."""
    return load_scenario(
        {
            "name": "mtp-probe",
            "model": "deepseek-r1",
            "hardware": "b200",
            "quantization": {"weights": weights, "activations": weights, "kv_cache": "fp8"},
            "workload": {
                "arrival": {"kind": "poisson", "rate": 1.0},
                "num_requests": 4,
                "lengths": {"kind": "fixed", "prompt": 1024, "output": 64},
            },
            "cluster": layout,
            "serving_engine": {"kind": engine},
            "speculative": mtp_speculative("deepseek-ai/DeepSeek-R1", k),
        }
    )


def probe(sc: Any, n: int, ctx: int) -> dict[str, float]:
    """Milliseconds of one step for n sequences (per rank) at ctx cached tokens each."""
    spec = pool_specs(sc)[0]
    k = sc.speculative.num_tokens
    plain = spec.cost.iteration([], n, n * ctx)
    verify = spec.cost.iteration([VerifyChunk((k + 1, ctx))] * n, 0, 0)
    draft = _draft_cost(sc, spec)(n, n * ctx)
    return {"plain": plain * 1e3, "verify": verify * 1e3, "draft": draft * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="fp8")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--dp", type=int, default=8, help="attention data-parallel ranks")
    ap.add_argument("--ep", type=int, default=8)
    ap.add_argument("--moe-tp", type=int, default=1)
    ap.add_argument("--engine", default="trtllm")
    ap.add_argument("--ctx", type=int, default=1500)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--n", default="1,8,64,256")
    a = ap.parse_args()
    layout = {"tp": a.tp, "attention_dp": a.dp, "ep": a.ep, "moe_tp": a.moe_tp}
    sc = scenario(a.weights, layout, a.engine, a.k)
    e = expected_tokens(sc.speculative.rates)
    print(f"DeepSeek-R1 {a.weights} B200 {layout} {a.engine}, {a.ctx} tokens/seq, k={a.k}, E[tokens/step]={e:.3f}")
    print(f"{'n':>5} {'plain ms':>9} {'verify ms':>9} {'draft ms':>9} {'step/plain':>10} {'speed-up':>8}")
    for n in (int(x) for x in a.n.split(",")):
        p = probe(sc, n, a.ctx)
        step = p["verify"] + p["draft"]
        print(
            f"{n:>5} {p['plain']:>9.3f} {p['verify']:>9.3f} {p['draft']:>9.3f} {step / p['plain']:>10.3f} "
            f"{e * p['plain'] / step:>8.2f}"
        )


if __name__ == "__main__":
    main()

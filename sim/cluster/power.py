"""What a run's cluster costs: GPUs, dollars per hour and per million output tokens, and average power.

Price: every GPU of every pool is paid for the whole run at its catalogue on-demand price
(`price_per_hour`), busy or not — the way a reserved serving cluster is billed. $ per million output
tokens = cluster $/hour ÷ (output tokens per second × 3600) × 10⁶, with the run's throughput.

Power, a deliberately simple utilisation model: a GPU draws `idle_power_fraction × TDP` when idle and its
full TDP while an iteration runs, so its average is `TDP × (idle + (1 − idle) × busy fraction)`, busy
fraction being the share of simulated time its instance spent in iterations. Real boards draw less than
TDP in memory-bound decode and spike above average in compute-bound prefill (Splitwise measures both),
and a node adds CPUs, NICs and fans; read the numbers as a GPU-only, upper-bound-ish estimate for
comparing cluster shapes, not as a wall-socket figure.
"""

from __future__ import annotations

import math
from typing import Any


def cost_summary(sim: Any, output_tokens_per_s: float, duration_s: float) -> dict[str, Any]:
    """`summary["cost"]`: per pool and in total (see the module docstring for the models)."""
    idle = sim.scenario.cluster.idle_power_fraction
    now = max(sim.simulated_s, 1e-12)
    pools: dict[str, Any] = {}
    first = 0
    for spec in sim.pools:
        insts = sim.instances[first : first + spec.instances]
        first += spec.instances
        busy = sum(i.busy_s for i in insts) / (now * len(insts))
        gpus = spec.gpus
        watts = gpus * spec.gpu.tdp_w * (idle + (1.0 - idle) * min(busy, 1.0))
        pools[spec.role] = {
            "hardware": spec.gpu.name,
            "instances": spec.instances,
            "tp": spec.tp,
            **({"pp": spec.pp} if spec.pp > 1 else {}),
            "gpus": gpus,
            "dollars_per_hour": gpus * spec.gpu.price_per_hour,
            "busy_fraction": busy,
            "avg_power_w": watts,
            "output_tokens": int(sum(i.tokens_out for i in insts)),
        }
    gpus = sum(p["gpus"] for p in pools.values())
    per_hour = sum(p["dollars_per_hour"] for p in pools.values())
    watts = sum(p["avg_power_w"] for p in pools.values())
    tok_h = output_tokens_per_s * 3600.0
    return {
        "gpus": gpus,
        "dollars_per_hour": per_hour,
        "dollars_per_million_output_tokens": per_hour / tok_h * 1e6 if tok_h > 0 else math.nan,
        "avg_power_w": watts,
        "energy_kwh": watts * duration_s / 3.6e6,
        "output_tokens_per_joule": output_tokens_per_s / watts if watts > 0 else math.nan,
        "idle_power_fraction": idle,
        "pools": pools,
    }


def cost_caption(summary: dict[str, Any]) -> str:
    """One line for the CLI table: GPUs, $/h, $/M tokens, average power (per pool when there are several)."""
    c = summary.get("cost")
    if not c:
        return ""
    line = (
        f"{c['gpus']} GPUs, ${c['dollars_per_hour']:.2f}/h, ${c['dollars_per_million_output_tokens']:.3f} per M "
        f"output tokens, avg {c['avg_power_w'] / 1000:.2f} kW"
    )
    if len(c["pools"]) > 1:
        parts = [
            f"{role}: {p['gpus']} x {p['hardware']}, ${p['dollars_per_hour']:.2f}/h, "
            f"busy {p['busy_fraction']:.0%}, {p['avg_power_w'] / 1000:.2f} kW"
            for role, p in c["pools"].items()
        ]
        line += " (" + "; ".join(parts) + ")"
    return line

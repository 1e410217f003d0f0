"""Core speed benchmarks (issue 2). Each case runs in a fresh process so peak RSS is its own.

    python benchmarks/core.py            # all cases, prints a table, rewrites benchmarks/RESULTS.md
    python benchmarks/core.py azure      # one case (azure | azure-stepwise | million)

(1) azure: the Azure 2023 conversation trace (19,366 requests, 1 h) on 4 x H100, Llama-3.1-8B, fcfs.
(2) million: 1,000,000 Poisson requests with ShareGPT lengths on 64 instances.
(3) azure-stepwise: (1) with fast-forward off, to count the events fast-forward saves.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES: dict[str, tuple[str, list[str]]] = {
    "azure": ("scenarios/azure-conv.yaml", []),
    "azure-stepwise": ("scenarios/azure-conv.yaml", ["engine.fast_forward=false"]),
    "million": (
        "scenarios/quickstart.yaml",
        [
            "workload.num_requests=1000000",
            "workload.arrival.rate=420",
            "cluster.instances=64",
            "cluster.router={kind: round_robin}",
            "scheduler={kind: fcfs}",
            "engine.timeline_interval_s=10",
        ],
    ),
}


def one(case: str) -> dict[str, object]:
    """Run one case in this process and return its measurements."""
    import sim

    path, over = CASES[case]
    sc = sim.load_scenario(ROOT / path, over)
    t0, c0 = time.perf_counter(), time.process_time()
    res = sim.run(sc)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = res.summary
    out = {
        "case": case,
        "requests": s["counts"]["arrived"],
        "completed": s["counts"]["completed"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "sim_wall_s": round(s["sim"]["wall_s"], 2),
        "req_per_wall_s": round(s["counts"]["arrived"] / wall),
        "events": s["sim"]["events"],
        "iterations": s["sim"]["iterations"],
        "simulated_s": round(s["sim"]["simulated_s"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "ttft_p50_ms": round(s["metrics"]["ttft_s"]["p50"] * 1000, 1),
    }
    if case.startswith("azure"):
        res.requests.to_parquet(f"/tmp/servesim-bench-{case}.parquet", index=False)
    return out


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--child":
        print(json.dumps(one(argv[1])))
        return
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return
    unknown = [a for a in argv if a not in CASES]
    if unknown:
        print(f"error: unknown case {unknown[0]!r}; known: {', '.join(CASES)} (see --help)", file=sys.stderr)
        sys.exit(2)
    cases = argv or list(CASES)
    rows = []
    for c in cases:
        p = subprocess.run([sys.executable, __file__, "--child", c], capture_output=True, text=True, cwd=ROOT)
        if p.returncode:
            sys.exit(f"{c} failed:\n{p.stderr}")
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    cols = list(rows[0])
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(str(r[k]) for k in cols) + " |" for r in rows]
    print("\n".join(table))
    same = None
    a, b = Path("/tmp/servesim-bench-azure.parquet"), Path("/tmp/servesim-bench-azure-stepwise.parquet")
    if {"azure", "azure-stepwise"} <= set(cases):
        same = a.read_bytes() == b.read_bytes()
        ev = {r["case"]: r["events"] for r in rows}
        ratio = ev["azure-stepwise"] / ev["azure"]
        print(f"fast-forward: {ratio:.1f}x fewer events; requests.parquet identical: {same}")
    if not argv:
        cpu = platform.processor() or platform.machine()
        machine = f"{cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"
        write_results(table, machine, same, {r["case"]: r for r in rows})


def write_results(table: list[str], machine: str, same: bool | None, rows: dict[str, dict]) -> None:
    ev = rows["azure-stepwise"]["events"] / rows["azure"]["events"]
    text = f"""# Benchmark results

Command: `python benchmarks/core.py` (each case in a fresh process, one core; wall time of `sim.run`
including building the workload and the output tables, not writing files).
Machine: {machine}; run on {time.strftime("%Y-%m-%d")}.

{chr(10).join(table)}

- fast-forward saves {ev:.1f}x events on the Azure trace; `requests.parquet` byte-identical: {same}.
- `wall_s` is the whole `sim.run` call, `cpu_s` its CPU time (robust when other work shares the machine),
  `sim_wall_s` the event loop alone; `peak_rss_mb` is the process's max RSS.
"""
    (ROOT / "benchmarks" / "RESULTS.md").write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])

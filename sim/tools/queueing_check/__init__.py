"""The simulator checked against the closed forms: ``servesim check-queueing`` and its Python API.

Unlike ``queueing/`` this package runs the simulator (it imports ``sim``); the closed-form modules stay
free of ``sim`` and SimPy.

For each *setup* we build the scenario that satisfies the formula's assumptions — one instance, Poisson
arrivals, the ``linear`` cost model, batch size 1 (``fcfs`` with ``max_num_seqs: 1``) or the batching
rule — run independent replications (seeds from ``numpy.random.SeedSequence``), delete a warm-up
prefix of each, and compare the mean with the theory through a t-interval over replication means.

By module: ``scenarios`` (the check scenarios and how a token law becomes a service time), ``setups``
(``SETUPS``: scenario + formula per check), ``runner`` (replications, intervals, ``run_checks``),
``report`` (rows, verdict, table).

Verdict: exact rows need the theory inside the interval, bound rows need the bound not below it. Each
row shows its 95% interval; the verdict uses Bonferroni-widened intervals so that a correct simulator
fails a whole report (many rows) with probability at most 5%.
"""

from sim.tools.queueing_check.report import CheckReport, CheckRow, render_table
from sim.tools.queueing_check.runner import parse_rhos, replicate, run_checks, t_interval
from sim.tools.queueing_check.scenarios import (
    AZURE_TRACE,
    BATCH_ALPHA,
    BATCH_TAU0,
    CLIP_N_MAX,
    DYN_B_MAX,
    FIXED_B,
    GEO_MEAN,
    MD1_C,
    MD1_TOKENS,
    MGC_SERVERS,
    A,
    azure_outputs,
)
from sim.tools.queueing_check.setups import EXACT_SETUPS, SETUPS, Comparison, Kind, Setup, mm1_reference_gap

__all__ = [
    "AZURE_TRACE",
    "BATCH_ALPHA",
    "BATCH_TAU0",
    "CLIP_N_MAX",
    "DYN_B_MAX",
    "EXACT_SETUPS",
    "FIXED_B",
    "GEO_MEAN",
    "MD1_C",
    "MD1_TOKENS",
    "MGC_SERVERS",
    "SETUPS",
    "A",
    "CheckReport",
    "CheckRow",
    "Comparison",
    "Kind",
    "Setup",
    "azure_outputs",
    "mm1_reference_gap",
    "parse_rhos",
    "render_table",
    "replicate",
    "run_checks",
    "t_interval",
]

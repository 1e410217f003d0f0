"""Theory vs simulation, row by row: the verdict of each row, the whole report, and its table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.tools.queueing_check.scenarios import MGC_SERVERS
from sim.tools.queueing_check.setups import Kind, mm1_reference_gap


@dataclass(frozen=True)
class CheckRow:
    """Theory vs simulation for one comparison at one load.

    ``ci_low_s``/``ci_high_s`` is the per-row interval at the report's confidence (95%);
    ``test_low_s``/``test_high_s`` is the Bonferroni-widened interval the verdict uses, so that a
    correct simulator fails the whole report with probability at most 1 − confidence.
    """

    model: str
    rho: float
    theory_s: float
    sim_s: float
    ci_low_s: float
    ci_high_s: float
    test_low_s: float
    test_high_s: float
    kind: Kind
    replications: int
    requests: int  # per replication, before warm-up deletion

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    @property
    def rel_error(self) -> float:
        return (self.sim_s - self.theory_s) / self.theory_s

    @property
    def in_ci(self) -> bool:
        """Exact: theory inside the per-row CI; bound: the bound not below it."""
        return _holds(self.kind, self.theory_s, self.ci_low_s, self.ci_high_s)

    @property
    def passed(self) -> bool:
        """The verdict: as ``in_ci`` on the Bonferroni interval; approximations always pass."""
        return _holds(self.kind, self.theory_s, self.test_low_s, self.test_high_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rho": self.rho,
            "theory_s": self.theory_s,
            "sim_s": self.sim_s,
            "ci_low_s": self.ci_low_s,
            "ci_high_s": self.ci_high_s,
            "rel_error": self.rel_error,
            "exact": self.exact,
            "kind": self.kind,
            "in_ci": self.in_ci,
            "passed": self.passed,
        }


def _holds(kind: Kind, theory: float, lo: float, hi: float) -> bool:
    if kind == "exact":
        return lo <= theory <= hi
    if kind == "bound":
        return theory >= lo
    return True


@dataclass
class CheckReport:
    """All rows and the confidence levels used."""

    rows: list[CheckRow] = field(default_factory=list)
    confidence: float = 0.95
    row_confidence: float = 0.95  # the Bonferroni level of each asserted row's test interval

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)


def render_table(report: CheckReport) -> Any:
    """A rich Table of the report (theory vs simulation, CI, relative error, verdict)."""
    from rich.table import Table

    pct = round(report.confidence * 100)
    t = Table(title="queueing theory vs simulation (mean wait in queue unless noted)", title_justify="left")
    for col, just in (
        ("model", "left"),
        ("ρ", "right"),
        ("theory (s)", "right"),
        ("sim (s)", "right"),
        (f"{pct}% CI (s)", "right"),
        ("rel. error", "right"),
        ("kind", "left"),
        ("ok", "left"),
    ):
        t.add_column(col, justify=just, no_wrap=col in ("model", "ok"))  # type: ignore[arg-type]  # rich JustifyMethod literals
    for r in report.rows:
        label = r.model + (" [sojourn]" if r.kind == "bound" else "")
        verdict = "[green]yes[/]" if r.in_ci else "[yellow]yes*[/]" if r.passed else "[bold red]NO[/]"
        if r.kind == "approx":
            verdict = "-"
        t.add_row(
            label,
            f"{r.rho:g}",
            f"{r.theory_s:.4g}",
            f"{r.sim_s:.4g}",
            f"{r.ci_low_s:.4g}–{r.ci_high_s:.4g}",
            f"{r.rel_error:+.2%}",
            r.kind,
            verdict,
        )
    notes = [
        "exact: theory must lie in the CI; bound: Inoue's bound on the mean sojourn must not lie below it; "
        f"approx: reported only (mgc-jsq: {MGC_SERVERS} instances behind join-shortest-queue vs Allen–Cunneen "
        f"M/G/{MGC_SERVERS}, a central queue)",
        f"verdict (exit status): each asserted row at {report.row_confidence:.2%} (Bonferroni), so a correct "
        f"simulator fails the report with probability <= {1 - report.confidence:.0%}; "
        f"yes* = outside the {pct}% CI, inside that interval",
        f"mm1-geo is exact M/G/1 with geometric tokens; its wait differs from the M/M/1 formula at the same "
        f"mean by {mm1_reference_gap():+.2%} (discrete vs exponential service)",
    ]
    t.caption = "\n".join(notes)
    t.caption_justify = "left"
    return t

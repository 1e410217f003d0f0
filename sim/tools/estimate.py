"""`servesim estimate`: price one iteration of a model on a GPU and break it down by operator. Every option is
checked first, and a mistake names the option that set it (not the scenario built from the options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from sim.errors import ServesimError
from sim.tools.options import blame_option
from sim.tools.tables import safe

MAX_BATCH = 1_000_000
# the scenario fields `estimate` builds from its options, for errors that name the option
_OPTIONS = {"cluster.tp": "--tp", "hardware": "--hardware", "cost_model": "--cost-model", "model": "--model"}


@dataclass
class Estimate:
    """The options of one `estimate` call."""

    model: str
    hardware: str
    tp: int
    prefill_tokens: int
    batch_size: int
    context_tokens: int
    cost_model: str
    profile: Path | None
    spec: str | dict[str, Any] = field(default="", init=False)  # the model as resolved by `price`

    def _scenario(self, spec: str | dict[str, Any]) -> Any:
        """The one-iteration scenario `estimate` prices; a mistake names the option that set the field."""
        from sim.config.scenario import load_scenario

        profile = {"profile": str(self.profile.resolve())} if self.profile else {}
        data = {
            "model": spec,
            "hardware": self.hardware,
            "cluster": {"tp": self.tp},
            "cost_model": {"kind": self.cost_model, **profile},
            "workload": {
                "num_requests": 1,
                "arrival": {"kind": "poisson", "rate": 1},
                "lengths": {"kind": "fixed", "prompt": 1, "output": 1},
            },
        }
        try:
            return load_scenario(data)
        except ServesimError as e:
            raise blame_option(e, _OPTIONS) from None

    def price(self) -> dict[str, float]:
        """Seconds per operator of the iteration the options describe."""
        from sim.config.limits import MAX_TOKENS, tp_problem
        from sim.config.modelarg import model_arg
        from sim.core.engine import build_cost_model

        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ServesimError(f"--batch-size: expected 1 to {MAX_BATCH:,}, found {self.batch_size}")
        for opt, count in (("--prefill-tokens", self.prefill_tokens), ("--context-tokens", self.context_tokens)):
            if not 0 <= count <= MAX_TOKENS:
                raise ServesimError(f"{opt}: expected 0 to {MAX_TOKENS:,}, found {count}")
        self.spec = model_arg(self.model)
        sc = self._scenario(self.spec)
        bad_tp = tp_problem(sc)
        if bad_tp:
            raise ServesimError(f"--tp: {bad_tp}")
        cm = build_cost_model(sc)
        if self.prefill_tokens > 0:
            parts: dict[str, float] = cm.breakdown([(self.prefill_tokens, 0)] * self.batch_size, 0, 0)
        else:
            n = self.batch_size
            parts = cm.breakdown([], n, n * (self.context_tokens + 1))
        return parts


def breakdown_table(est: Estimate, parts: dict[str, float]) -> Table:
    """The per-operator table, milliseconds and shares, with the iteration's total."""
    from sim.config.modelarg import model_label

    total = sum(parts.values())
    what = (
        f"prefill {est.batch_size} x {est.prefill_tokens}"
        if est.prefill_tokens
        else f"decode {est.batch_size} seqs @ {est.context_tokens}"
    )
    t = Table(title=f"{safe(model_label(est.spec))} on {est.tp} x {safe(est.hardware)}: {what}")
    t.add_column("operator")
    t.add_column("ms", justify="right")
    t.add_column("share", justify="right")
    for k, v in parts.items():
        t.add_row(k, f"{v * 1000:.3f}", f"{v / total:.1%}" if total else "-")
    t.add_row("[bold]iteration[/]", f"[bold]{total * 1000:.3f}[/]", "100%")
    return t

"""Errors raised by the closed-form queueing results.

`queueing/` imports nothing from `sim` (it must stay usable on its own), so it defines its own error
types. Both derive from :class:`ValueError`: an unstable or malformed queue is a bad *argument*, and
callers that already catch ``ValueError`` keep working. ``sim``'s CLI may wrap them in its own
user-facing error.
"""

from __future__ import annotations

import math

__all__ = ["UnstableError", "check_nonnegative", "check_positive"]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class UnstableError(ValueError):
    """The offered load is at or above capacity: no stationary mean exists.

    Raised instead of returning ``inf`` or a negative number, so a sweep never silently plots
    nonsense. The message names the load and the parameters that produced it, e.g.
    ``unstable: rho = 1.05 >= 1 (lambda=0.7, E[S]=1.5)``.
    """

    def __init__(self, rho: float, **params: float) -> None:
        self.rho = float(rho)
        self.params = {k: float(v) for k, v in params.items()}
        detail = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        msg = f"unstable: rho = {self.rho:.4g} >= 1"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


def check_positive(name: str, value: float) -> float:
    """Return ``float(value)`` or raise ``ValueError`` unless it is finite and > 0."""
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_nonnegative(name: str, value: float) -> float:
    """Return ``float(value)`` or raise ``ValueError`` unless it is finite and >= 0."""
    v = float(value)
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v

"""Moved: every family of kinds lives in `sim.core.registry`. Kept only for `sim.core.engine`'s import until it
switches; new code imports from `sim.core.registry`."""

from sim.core.registry import MIGRATIONS, PREDICTORS, ROUTERS, SCHEDULERS

__all__ = ["MIGRATIONS", "PREDICTORS", "ROUTERS", "SCHEDULERS"]

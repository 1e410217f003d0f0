"""Pluggable decisions: batch schedulers, routers and length predictors, each registered under its YAML `kind`."""

from policies import (  # noqa: F401  (register the built-ins)
    continuous,
    length_group,
    ltr,
    mlfq,
    predictors,
    priority,
    routers,
    sjf,
    static,
)
from policies.registry import PREDICTORS, ROUTERS, SCHEDULERS

__all__ = ["PREDICTORS", "ROUTERS", "SCHEDULERS"]

"""Pluggable decisions: schedulers, routers, migration and length predictors, registered under their YAML `kind`."""

from policies import (  # noqa: F401  (register the built-ins)
    continuous,
    length_group,
    ltr,
    migration,
    mlfq,
    predictors,
    prefix_router,
    priority,
    routers,
    sjf,
    static,
    vllm,
)
from policies.registry import MIGRATIONS, PREDICTORS, ROUTERS, SCHEDULERS

__all__ = ["MIGRATIONS", "PREDICTORS", "ROUTERS", "SCHEDULERS"]

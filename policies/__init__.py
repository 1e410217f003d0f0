"""Pluggable decisions: schedulers, routers, migration and length predictors, registered under their YAML `kind`
in the registries of `sim.core.registry` (importing this package registers the built-ins)."""

import sim  # noqa: F401  (first: its guard chooses compiled or source modules, sim.core.native)
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
    sglang,
    sjf,
    static,
    trtllm,
    vllm,
)

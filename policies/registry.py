"""The registries of pluggable decisions, keyed by the `kind` string the scenario YAML uses."""

from __future__ import annotations

from typing import Any

from policies.routing import Router
from sim.batch import BatchScheduler
from sim.registry import Registry

SCHEDULERS: Registry[BatchScheduler] = Registry("scheduler")
ROUTERS: Registry[Router] = Registry("router")
PREDICTORS: Registry[Any] = Registry("length predictor")  # policies.predictors.LengthPredictor
MIGRATIONS: Registry[Any] = Registry("migration policy")  # policies.migration.MigrationPolicy

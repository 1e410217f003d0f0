"""The registries of pluggable decisions, keyed by the `kind` string the scenario YAML uses."""

from __future__ import annotations

from typing import Any

from sim.core.batch import BatchScheduler
from sim.core.registry import Registry
from sim.core.router import Router

SCHEDULERS: Registry[BatchScheduler] = Registry("scheduler")
ROUTERS: Registry[Router] = Registry("router")
PREDICTORS: Registry[Any] = Registry("length predictor")  # policies.predictors.LengthPredictor
MIGRATIONS: Registry[Any] = Registry("migration policy")  # policies.migration.MigrationPolicy

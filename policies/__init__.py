"""Pluggable decisions: batch schedulers and routers, each registered under its YAML `kind`."""

from policies import continuous, routers  # noqa: F401  (register the built-ins)
from policies.registry import ROUTERS, SCHEDULERS

__all__ = ["ROUTERS", "SCHEDULERS"]

"""servesim's event core. The public API: `load_scenario`, `run`, `Result`, `Scenario`, `ServesimError`.

The names are imported lazily (PEP 562) so that light modules such as `sim.errors` can be imported by
`hwprofiles` and `queueing` without pulling in the whole engine (and without an import cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.core import native_guard as _native_guard

_native_guard.guard()  # before any compiled module loads: the sources instead of a stale build (sim.core.native_guard)

from sim.errors import ServesimError  # noqa: E402

if TYPE_CHECKING:
    from sim.config.scenario import Scenario, load_scenario
    from sim.output.result import Result, run

__all__ = ["Result", "Scenario", "ServesimError", "load_scenario", "run"]

_LAZY = {
    "Result": "sim.output.result",
    "run": "sim.output.result",
    "Scenario": "sim.config.scenario",
    "load_scenario": "sim.config.scenario",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")

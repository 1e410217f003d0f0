"""servesim's event core. The public API: `load_scenario`, `run`, `Result`, `Scenario`."""

from sim.errors import ServesimError
from sim.result import Result, run
from sim.scenario import Scenario, load_scenario

__all__ = ["Result", "Scenario", "ServesimError", "load_scenario", "run"]

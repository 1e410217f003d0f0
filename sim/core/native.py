"""The opt-in compiled core (`SERVESIM_COMPILE=1`, see setup.py): which modules mypyc compiles, and the class marker
it reads there.

A compiled class is a C type: Python code may not subclass it or set a method on one of its objects unless the class
says so. `mypyc_attr(allow_interpreted_subclasses=True)` marks the classes that plugins or tests subclass;
`mypyc_attr(native_class=False)` a class whose objects would get a method assigned (none now: `MemoCost` is native,
with a `diverged` flag and a `spy` seam for tests, s13-memo). In the default pure-Python install (no mypy, hence no
`mypy_extensions`) the marker does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

_C = TypeVar("_C")

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # the default install: nothing compiles, so the marker has nothing to tell

    def mypyc_attr(*_attrs: str, **_kwattrs: object) -> Callable[[_C], _C]:
        return lambda cls: cls


# what `SERVESIM_COMPILE=1` compiles: the engine's per-event and per-iteration code (profile of chunked-10k and the
# Azure hour: the instance loop, the decode and chunk runs, the cohort, the pricing memo) and Sarathi/fcfs planning
# (`policies/continuous.py`: −5 % CPU in chunked-100k, −4.9 % instructions in the Azure hour, compiled; SPEED.md s12;
# its pydantic configs live in `policies/continuous_config.py`, which mypyc cannot compile), and the driver that resumes
# the engine's processes (`loop.py`, in place of SimPy's interpreted `Process._resume`; SPEED.md s13-core)
COMPILED = [
    "sim/core/batch.py",
    "sim/core/clock.py",
    "sim/core/cohort.py",
    "sim/core/engine.py",
    "sim/core/instance.py",
    "sim/core/kvcache.py",
    "sim/core/late.py",
    "sim/core/loop.py",
    "sim/core/recorder.py",
    "sim/core/request.py",
    "sim/core/steps.py",
    "sim/core/view.py",
    "sim/costmodel/memo.py",
    "policies/continuous.py",
]


def compiled() -> bool:
    """Whether this process runs the compiled core (a mypyc extension module was imported for `sim.core.steps`)."""
    import sim.core.steps

    return not str(sim.core.steps.__file__).endswith(".py")


__all__ = ["COMPILED", "compiled", "mypyc_attr"]


if __name__ == "__main__":
    print("compiled core (mypyc)" if compiled() else "pure Python")

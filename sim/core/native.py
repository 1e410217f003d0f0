"""The compiled core: which modules mypyc compiles (setup.py builds them by default), the class marker it reads
there, and the guard that falls back to their sources when a build no longer matches them.

A compiled class is a C type: Python code may not subclass it or set a method on one of its objects unless the class
says so. `mypyc_attr(allow_interpreted_subclasses=True)` marks the classes that plugins or tests subclass;
`mypyc_attr(native_class=False)` a class whose objects would get a method assigned (none now: `MemoCost` is native,
with a `diverged` flag and a `spy` seam for tests, s13-memo). Without mypy installed (`mypy_extensions`) the marker
does nothing.

The stale-build guard lives in `sim.core.native_guard` (stdlib only: setup.py and `sim/__init__.py` load it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sim.core.native_guard import COMPILED

_C = TypeVar("_C")

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # no mypy here, so no mypyc built this process's modules: the marker has nothing to tell

    def mypyc_attr(*_attrs: str, **_kwattrs: object) -> Callable[[_C], _C]:
        return lambda cls: cls


def compiled() -> bool:
    """Whether this process runs the compiled core (a mypyc extension module was imported for `sim.core.steps`)."""
    import sim.core.steps

    return not str(sim.core.steps.__file__).endswith(".py")


__all__ = ["COMPILED", "compiled", "mypyc_attr"]


if __name__ == "__main__":
    from sim.core import native_guard

    print("compiled core (mypyc)" if compiled() else f"pure Python ({native_guard.STATUS or 'not checked'})")

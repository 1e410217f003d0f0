"""Packaging lives in pyproject.toml; this file adds the compiled core, which a normal install builds.

    pip install -e .                          # (or `pip install .`) compiles the engine's hot modules with mypyc
    python setup.py build_ext --inplace       # the same in a checkout, without pip (mypy installed: the `dev` extra)
    SERVESIM_PURE=1 pip install -e .          # pure Python: no compiler, no build

The modules are `sim.core.native.COMPILED`; mypyc turns them into C extensions beside the sources, and the outputs
are byte-identical to the pure-Python engine (benchmarks/SPEED.md, sessions 11-14), which stays available: the build
records each compiled source's sha256 (`sim/core/native_build.json`, git-ignored), and at import `sim.core.native_guard`
loads the sources instead when one of them changed since (or with `SERVESIM_PURE=1` at run time).

The compile is optional, the way PyYAML's and simplejson's C speedups are: when it cannot run (mypy/mypyc missing,
a type error mypyc refuses, no C compiler or Python headers) the install goes on as pure Python and prints one line
saying so. `python -m sim.core.native` says which core runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
STAMP = Path("sim", "core", "native_build.json")  # beside sim/core/native_guard.py (which reads it)
# what setup() is given: mypyc's real extensions replace it when build_ext runs, so pip's other calls of this file
# (build requirements, metadata) skip mypyc's type check and C generation (about a minute each, eagerly)
PENDING = Extension("servesim_mypyc_pending", sources=[])


def say(why: str, where: Path = ROOT) -> None:
    """The one line a user sees when the install falls back to pure Python (pip shows it with -v), kept in the build
    record too, where `python -m sim.core.native` finds it ("pure Python (not built: ...)")."""
    print(f"servesim: installing pure Python, without the compiled core ({why}); README.md, Speed", file=sys.stderr)
    stamp = where / STAMP
    if stamp.exists() and "not built" not in json.loads(stamp.read_text() or "{}"):
        return  # a working in-place build's record stays (e.g. a `pip install .` of that checkout that fell back)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"not built": why}) + "\n")


def brief(text: str, head: int = 100, tail: int = 60) -> str:
    """A compiler's failure names its whole command line (30+ flags): keep its start and its exit status."""
    return text if len(text) <= head + tail + 5 else f"{text[:head]} ... {text[-tail:]}"


def sources_sha256(rels: list[str]) -> dict[str, str]:
    """Each compiled module's source hash, taken before mypyc reads it (an edit during the build reads as stale)."""
    return {rel: hashlib.sha256((ROOT / rel).read_bytes()).hexdigest() for rel in rels}


class OptionalBuildExt(build_ext):
    """Build the mypyc extensions, or nothing: a failed compile leaves no extension behind and the install goes on."""

    record: dict[str, str] = {}  # noqa: RUF012  (set by `compiled_extensions`)

    def finalize_options(self) -> None:
        if self.distribution.ext_modules == [PENDING]:
            self.distribution.ext_modules = compiled_extensions()
        super().finalize_options()

    def run(self) -> None:
        inplace = bool(getattr(self, "inplace", False))  # (setuptools clears it while building, restores it on success)
        try:
            super().run()
        except Exception as exc:  # CCompilerError, DistutilsExecError, DistutilsPlatformError, OSError, ...
            self.inplace = inplace
            self.discard()
            say(
                f"the C build failed: {type(exc).__name__}: {brief(str(exc).splitlines()[0] if str(exc) else '')}",
                self.outputs_dir(),
            )
            return
        if self.extensions:  # (none: mypyc could not run, and said so)
            self.write_record()

    def outputs_dir(self) -> Path:
        """Where `sim/` lies for this build: the checkout (in place, also `pip install -e .`) or the build folder."""
        return ROOT if self.inplace else Path(self.build_lib)

    def discard(self) -> None:
        """Remove what this build made (a partial set of extensions would shadow some sources and not others)."""
        for ext in self.extensions:
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
        (self.outputs_dir() / STAMP).unlink(missing_ok=True)

    def write_record(self) -> None:
        dest = self.outputs_dir() / STAMP
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(self.record, indent=1, sort_keys=True) + "\n")


def native_guard() -> Any:
    """`sim/core/native_guard.py` alone (importing `sim` would run its guard): the module list, the build's files."""
    spec = importlib.util.spec_from_file_location("native_guard", ROOT / "sim" / "core" / "native_guard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_extensions() -> list[Any]:
    """mypyc's extensions for `COMPILED` (its type check and C generation run here), or [] with the reason said."""
    compiled = native_guard().COMPILED
    OptionalBuildExt.record = sources_sha256(compiled)
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        say(f"mypyc is not importable: {exc}; `pip install mypy` or keep build isolation")
        return []
    try:
        return list(mypycify(compiled, opt_level="3"))
    except SystemExit as exc:  # mypyc reports type errors and exits
        say(f"mypyc stopped: {exc.code}")
    except Exception as exc:
        say(f"mypyc failed: {type(exc).__name__}: {brief(str(exc))}")
    return []


if os.environ.get("SERVESIM_PURE") == "1":
    if {"editable_wheel", "develop", "--inplace", "-i"} & set(sys.argv):  # an in-place opt-out removes an earlier
        for path in [*native_guard().built_extensions(ROOT), ROOT / STAMP]:  # in-place build (`pip install .` leaves
            path.unlink(missing_ok=True)  # the checkout's alone)
    setup(cmdclass={"build_ext": OptionalBuildExt})
else:
    setup(ext_modules=[PENDING], cmdclass={"build_ext": OptionalBuildExt})

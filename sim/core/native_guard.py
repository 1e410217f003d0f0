"""The compiled core's module list and its stale-build guard: run by `sim/__init__.py` before any compiled module
loads, and read by setup.py without importing `sim` (so this module imports the standard library only).

In a checkout or an editable install the extensions sit beside the sources and would shadow every later edit of
them. The build records each source's sha256 (`native_build.json`, beside this file, git-ignored); when one differs,
or the set of extensions is incomplete, or `SERVESIM_PURE=1` is set, a meta-path finder loads ALL compiled modules
from their sources (all of them: a pure module cannot subclass a compiled class), and a stale build says so once on
stderr. The check costs a few stat calls when nothing is built, and hashing ~150 kB of source when something is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# what setup.py compiles: the engine's per-event and per-iteration code (profile of chunked-10k and the
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

ROOT = Path(__file__).resolve().parent.parent.parent  # where `sim/` and `policies/` lie (checkout or site-packages)
RECORD = Path(__file__).with_name("native_build.json")  # the build's {source: sha256} (setup.py writes it)
REBUILD = "pip install -e . (or: python setup.py build_ext --inplace)"


def module_name(rel: str) -> str:
    """'sim/core/steps.py' -> 'sim.core.steps'."""
    return rel.removesuffix(".py").replace("/", ".")


def _extension_of(root: Path, rel: str) -> Path | None:
    stem = str(root / rel.removesuffix(".py"))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(stem + suffix):
            return Path(stem + suffix)
    return None


def built_extensions(root: Path, modules: Sequence[str] = COMPILED) -> list[Path]:
    """The extension files a build left under `root` (a checkout: in site-packages its `*__mypyc.*` glob would also
    match other packages' mypyc libraries): one per compiled module, and mypyc's shared library."""
    found = [p for p in (_extension_of(root, rel) for rel in modules) if p is not None]
    return found + sorted(root.glob("*__mypyc.*")) if found else found


def sha256(path: Path) -> str:
    import hashlib  # (here: only a built tree pays for it)

    return hashlib.sha256(path.read_bytes()).hexdigest()


def decide(root: Path, modules: Sequence[str], record: Path, env: Mapping[str, str]) -> tuple[bool, str]:
    """(load the sources?, why): whether the build under `root` can run, read from the files alone."""
    built = [rel for rel in modules if _extension_of(root, rel) is not None]
    if not built:  # (a build that fell back to pure Python left its reason in the record)
        return False, "not built" + (f": {_failed(record)}" if os.path.exists(record) else "")
    if env.get("SERVESIM_PURE") == "1":
        return True, "forced: SERVESIM_PURE=1"
    if len(built) < len(modules):
        return True, f"stale: {len(built)} of {len(modules)} modules built"
    import json

    try:
        hashes = json.loads(record.read_text())
    except (OSError, ValueError):
        return True, f"stale: no build record ({record.name})"
    changed = []
    for rel in modules:
        try:
            if hashes.get(rel) != sha256(root / rel):
                changed.append(rel)
        except OSError:
            changed.append(rel)
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return True, f"stale: {changed[0]}{more} changed since the build"
    return False, "compiled"


def _failed(record: Path) -> str:
    import json

    try:
        return str(json.loads(record.read_text())["not built"])
    except (OSError, ValueError, KeyError, TypeError):
        return "an older build's record remains"


class SourceFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that loads the named modules from their `.py` files, ahead of the extensions beside them."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        for entry in path if path is not None else sys.path:
            source = Path(entry) / (fullname.rpartition(".")[2] + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


STATUS = ""  # what `guard` found ("compiled" or why not); `python -m sim.core.native` prints it


def install(root: Path, modules: Sequence[str], record: Path, env: Mapping[str, str]) -> str:
    """Put a `SourceFinder` for `modules` first on `sys.meta_path` when the build cannot run; say why (a stale one
    also on stderr)."""
    sources, why = decide(root, modules, record, env)
    names = frozenset(map(module_name, modules))
    if not sources or any(isinstance(f, SourceFinder) and f.names == names for f in sys.meta_path):
        return why
    early = sorted(names & sys.modules.keys())
    if early:  # too late to choose (imported before `sim`, which the packages' imports rule out): say so
        return f"{why}; but {early[0]} was imported before the check"
    sys.meta_path.insert(0, SourceFinder(names))
    if why.startswith("stale"):
        print(f"servesim: the compiled core is {why}; running pure Python. Rebuild: {REBUILD}", file=sys.stderr)
    return why


def guard() -> None:
    """Once per process, before a compiled module loads (`sim/__init__.py`): the sources when the build cannot run."""
    global STATUS
    if not STATUS:
        STATUS = install(ROOT, COMPILED, RECORD, os.environ)

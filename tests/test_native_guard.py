"""The compiled core's stale-build guard (`sim.core.native_guard`) on hand-made trees, and, when this checkout is
compiled, the compiled and the pure engine writing the same bytes.

The hand-made trees hold a fake extension (not a loadable library) beside each source: importing the module through
the default finders then fails, so a test that imports it proves that the guard's finder chose the source.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from sim.core import native_guard
from sim.core.native_guard import SourceFinder, decide, install, module_name

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["guardpkg/alpha.py", "guardpkg/beta.py"]


def _tree(root: Path, built: list[str], record: bool = True) -> Path:
    """A package of two modules under `root`, `built` of them with a fake extension; the build record (if asked)."""
    (root / "guardpkg").mkdir()
    (root / "guardpkg" / "__init__.py").write_text("")
    for rel in MODULES:
        (root / rel).write_text(f"NAME = {rel!r}\n")
    for rel in built:
        (root / (rel.removesuffix(".py") + EXTENSION_SUFFIXES[0])).write_bytes(b"not a shared library")
    path = root / "native_build.json"
    if record:
        path.write_text(json.dumps({rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in MODULES}))
    return path


@pytest.fixture
def importable(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path` on `sys.path`, and afterwards no trace of `guardpkg` or its finder."""
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.meta_path[:] = [
            f for f in sys.meta_path if not (isinstance(f, SourceFinder) and "guardpkg" in str(f.names))
        ]
        for name in [n for n in sys.modules if n.split(".")[0] == "guardpkg"]:
            del sys.modules[name]
        importlib.invalidate_caches()


def test_nothing_built_runs_the_sources_without_a_finder(tmp_path: Path) -> None:
    record = _tree(tmp_path, built=[], record=False)
    assert decide(tmp_path, MODULES, record, {}) == (False, "not built")
    assert decide(tmp_path, MODULES, record, {"SERVESIM_PURE": "1"}) == (False, "not built")


def test_a_fresh_build_runs_compiled(tmp_path: Path) -> None:
    record = _tree(tmp_path, built=MODULES)
    assert decide(tmp_path, MODULES, record, {}) == (False, "compiled")
    assert decide(tmp_path, MODULES, record, {"SERVESIM_PURE": "0"}) == (False, "compiled")


def test_an_edited_source_makes_the_build_stale(tmp_path: Path) -> None:
    record = _tree(tmp_path, built=MODULES)
    (tmp_path / MODULES[1]).write_text("NAME = 'edited'\n")
    assert decide(tmp_path, MODULES, record, {}) == (True, "stale: guardpkg/beta.py changed since the build")
    (tmp_path / MODULES[0]).write_text("NAME = 'edited too'\n")
    assert decide(tmp_path, MODULES, record, {})[1] == "stale: guardpkg/alpha.py and 1 more changed since the build"


def test_a_missing_record_or_extension_makes_the_build_stale(tmp_path: Path) -> None:
    record = _tree(tmp_path, built=MODULES[:1])
    assert decide(tmp_path, MODULES, record, {}) == (True, "stale: 1 of 2 modules built")
    (tmp_path / (MODULES[1].removesuffix(".py") + EXTENSION_SUFFIXES[0])).write_bytes(b"x")
    record.unlink()
    assert decide(tmp_path, MODULES, record, {}) == (True, "stale: no build record (native_build.json)")
    record.write_text("{not json")
    assert decide(tmp_path, MODULES, record, {})[0]


def test_servesim_pure_forces_the_sources(tmp_path: Path) -> None:
    record = _tree(tmp_path, built=MODULES)
    assert decide(tmp_path, MODULES, record, {"SERVESIM_PURE": "1"}) == (True, "forced: SERVESIM_PURE=1")


def test_a_stale_build_imports_every_module_from_source_and_says_so_once(
    importable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _tree(importable, built=MODULES)
    (importable / MODULES[0]).write_text("NAME = 'edited'\n")
    assert install(importable, MODULES, record, {}) == "stale: guardpkg/alpha.py changed since the build"
    assert install(importable, MODULES, record, {}).startswith("stale")  # a second call adds no finder, no line
    alpha, beta = importlib.import_module("guardpkg.alpha"), importlib.import_module("guardpkg.beta")
    assert (alpha.NAME, beta.NAME) == ("edited", "guardpkg/beta.py")  # beta is fresh but comes from source too
    assert alpha.__file__ == str(importable / MODULES[0])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "stale: guardpkg/alpha.py" in err[0] and native_guard.REBUILD in err[0], err


def test_forced_sources_say_nothing(importable: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = _tree(importable, built=MODULES)
    assert install(importable, MODULES, record, {"SERVESIM_PURE": "1"}) == "forced: SERVESIM_PURE=1"
    assert importlib.import_module("guardpkg.beta").NAME == "guardpkg/beta.py"
    assert capsys.readouterr().err == ""


def test_a_fresh_build_gets_no_finder_and_loads_the_extension(importable: Path) -> None:
    record = _tree(importable, built=MODULES)
    assert install(importable, MODULES, record, {}) == "compiled"
    assert not any(isinstance(f, SourceFinder) and "guardpkg.alpha" in f.names for f in sys.meta_path)
    with pytest.raises(ImportError):  # the default finders take the (fake) extension first
        importlib.import_module("guardpkg.alpha")


def test_too_late_is_reported_not_hidden(importable: Path) -> None:
    record = _tree(importable, built=[])
    importlib.import_module("guardpkg.alpha")  # the source, before any guard
    (importable / (MODULES[0].removesuffix(".py") + EXTENSION_SUFFIXES[0])).write_bytes(b"x")
    why = install(importable, MODULES, record, {"SERVESIM_PURE": "1"})
    assert why == "forced: SERVESIM_PURE=1; but guardpkg.alpha was imported before the check"


def test_every_compiled_package_runs_the_guard_before_its_modules() -> None:
    """A compiled module is imported through its package's `__init__`: each top package must import `sim` first."""
    assert [module_name(rel) for rel in native_guard.COMPILED] == [
        rel.removesuffix(".py").replace("/", ".") for rel in native_guard.COMPILED
    ]
    for top in sorted({rel.split("/")[0] for rel in native_guard.COMPILED} - {"sim"}):
        first = next(
            line
            for line in (ROOT / top / "__init__.py").read_text().splitlines()
            if line.startswith(("import", "from"))
        )
        assert first.startswith("import sim"), f"{top}/__init__.py must `import sim` first (the guard), not {first!r}"


def _env(**extra: str) -> dict[str, str]:
    """This environment for a child on this checkout, as installed (no inherited `SERVESIM_PURE`) unless `extra`."""
    return {**{k: v for k, v in os.environ.items() if k != "SERVESIM_PURE"}, "PYTHONPATH": str(ROOT), **extra}


# this checkout's build as a child without SERVESIM_PURE finds it: "compiled", "not built[: why]" or "stale: ..."
BUILD = decide(native_guard.ROOT, native_guard.COMPILED, native_guard.RECORD, {})[1]


def test_python_m_native_says_which_core_runs() -> None:
    run = [sys.executable, "-m", "sim.core.native"]
    said = subprocess.run(run, cwd=ROOT, env=_env(), capture_output=True, text=True, check=True)
    assert said.stdout.strip() == ("compiled core (mypyc)" if BUILD == "compiled" else f"pure Python ({BUILD})")
    assert "RuntimeWarning" not in said.stderr, said.stderr
    forced = subprocess.run(run, cwd=ROOT, env=_env(SERVESIM_PURE="1"), capture_output=True, text=True, check=True)
    expect = f"pure Python ({BUILD})" if BUILD.startswith("not built") else "pure Python (forced: SERVESIM_PURE=1)"
    assert forced.stdout.strip() == expect


# shipped scenarios that cover chunked prefill (policies/continuous.py), vLLM's scheduler, KV pressure with
# recompute, and disaggregation; small, and all run in one process per core (the imports cost more than the runs)
SCENARIOS = ["sarathi-1x", "vllm-1x", "fcfs-kv-pressure-recompute", "disagg-2p2d"]
RUN = """
import sys
import sim
from sim.core.native import compiled
print("compiled" if compiled() else "pure")
for name in sys.argv[2:]:
    sim.run(f"scenarios/regression/{name}.yaml").save(f"{sys.argv[1]}/{name}", plots=False)
"""


@pytest.mark.skipif(BUILD != "compiled", reason=f"this checkout's compiled core is {BUILD}: pip install -e . builds it")
def test_compiled_and_pure_write_the_same_bytes(tmp_path: Path) -> None:
    for core, env in (("compiled", _env()), ("pure", _env(SERVESIM_PURE="1"))):
        cmd = [sys.executable, "-c", RUN, str(tmp_path / core), *SCENARIOS]
        ran = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert ran.stdout.splitlines()[0] == core, ran.stdout
    for name in SCENARIOS:
        compiled_bytes = (tmp_path / "compiled" / name / "requests.parquet").read_bytes()
        assert compiled_bytes == (tmp_path / "pure" / name / "requests.parquet").read_bytes(), name

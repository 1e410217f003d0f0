"""Run the test suite on the other core: pure Python in this checkout, or compiled in a freshly built copy.

    python benchmarks/compiled_tests.py -n 2                 # the suite with SERVESIM_PURE=1 (the sources, here)
    python benchmarks/compiled_tests.py --compiled           # copy to a temporary folder, build, run the suite there
    python benchmarks/compiled_tests.py --compiled -n 2 tests/test_open_loop_arrivals.py   # the rest goes to pytest
    python benchmarks/compiled_tests.py --compiled --dest /tmp/sc --keep -n 2   # keep the built copy (then --no-build)

A normal install compiles the core (setup.py) and CI runs the suite compiled; `SERVESIM_PURE=1` loads the sources
instead (`sim.core.native_guard`), so the default here checks that the pure engine, which a machine without a
compiler gets, still passes. `--compiled` builds a copy, not the checkout, so that uncommitted edits are tested
compiled without leaving extensions beside the checkout's sources: the copy is the checkout's tracked and untracked,
not ignored files (`git ls-files`). Exits with pytest's status; 2 if the build fails or the copy does not run
compiled (`python -m sim.core.native`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_tree(dest: Path) -> None:
    """The checkout's files (tracked, and untracked unless ignored) under `dest`."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _env(dest: Path) -> dict[str, str]:
    """This environment for the copy in `dest`, without an opt-out of the compiled core."""
    return {**{k: v for k, v in os.environ.items() if k != "SERVESIM_PURE"}, "PYTHONPATH": str(dest)}


def build(dest: Path) -> bool:
    """`python setup.py build_ext --inplace` in `dest`; True when the copy then runs compiled."""
    env = _env(dest)
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=dest, env=env)
    if done.returncode != 0:
        print(f"compiled_tests: the build failed in {dest} (exit {done.returncode})", file=sys.stderr)
        return False
    return runs_compiled(dest)


def runs_compiled(dest: Path) -> bool:
    """Whether the copy in `dest` imports the compiled core (`python -m sim.core.native`)."""
    env = _env(dest)
    which = subprocess.run(
        [sys.executable, "-m", "sim.core.native"], cwd=dest, env=env, capture_output=True, text=True
    ).stdout.strip()
    print(f"compiled_tests: {dest} runs: {which}")
    return which.startswith("compiled")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compiled", action="store_true", help="build a copy of the checkout and run the suite there")
    ap.add_argument("--dest", type=Path, help="where to copy and build (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the copy afterwards")
    ap.add_argument("--no-build", action="store_true", help="reuse a copy built before in --dest")
    a, pytest_args = ap.parse_known_args()  # the rest goes to pytest (default: the whole suite)
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]  # no path: `testpaths`
    if not a.compiled:
        if a.dest or a.keep or a.no_build:
            ap.error("--dest, --keep and --no-build go with --compiled")
        env = {**os.environ, "SERVESIM_PURE": "1", "PYTHONPATH": str(ROOT)}
        print(f"compiled_tests: {ROOT} with SERVESIM_PURE=1 (the pure-Python engine)")
        sys.exit(subprocess.run(pytest, cwd=ROOT, env=env).returncode)
    if a.no_build and (a.dest is None or not (a.dest / "sim" / "core" / "native.py").is_file()):
        ap.error("--no-build needs --dest DIR holding a copy built before (run once with --dest DIR --keep)")
    dest = a.dest or Path(tempfile.mkdtemp(prefix="servesim-compiled-"))
    try:
        if not a.no_build:
            dest.mkdir(parents=True, exist_ok=True)
            copy_tree(dest)
            if not build(dest):
                sys.exit(2)
        elif not runs_compiled(dest):
            print(f"compiled_tests: {dest} does not run the compiled core; build it again without --no-build")
            sys.exit(2)
        sys.exit(subprocess.run(pytest, cwd=dest, env=_env(dest)).returncode)
    finally:
        if not a.keep and a.dest is None:
            shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Build the opt-in compiled core (`sim.core.native`, setup.py) in a copy of this checkout and run the tests there.

    python benchmarks/compiled_tests.py                  # copy to a temporary folder, build, run the whole suite
    python benchmarks/compiled_tests.py -n 2 tests/test_open_loop_arrivals.py   # other arguments go to pytest
    python benchmarks/compiled_tests.py --dest /tmp/sc --keep -n 2     # keep the built copy (then: --no-build)

A copy, not the checkout: the build puts C extensions beside the sources, and a checkout holding them runs compiled
from then on (CI and every other command test pure Python). The copy is the checkout's tracked and untracked,
not ignored files (`git ls-files`), so uncommitted edits are tested too. Exits with pytest's status; 2 if the build
fails or the copy does not run compiled (`python -m sim.core.native`).
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


def build(dest: Path) -> bool:
    """`SERVESIM_COMPILE=1 python setup.py build_ext --inplace` in `dest`; True when the copy then runs compiled."""
    env = {**os.environ, "SERVESIM_COMPILE": "1", "PYTHONPATH": str(dest)}
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=dest, env=env)
    if done.returncode != 0:
        print(f"compiled_tests: the build failed in {dest} (exit {done.returncode})", file=sys.stderr)
        return False
    return runs_compiled(dest)


def runs_compiled(dest: Path) -> bool:
    """Whether the copy in `dest` imports the compiled core (`python -m sim.core.native`)."""
    env = {**os.environ, "PYTHONPATH": str(dest)}
    which = subprocess.run(
        [sys.executable, "-m", "sim.core.native"], cwd=dest, env=env, capture_output=True, text=True
    ).stdout.strip()
    print(f"compiled_tests: {dest} runs: {which}")
    return which.startswith("compiled")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dest", type=Path, help="where to copy and build (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the copy afterwards")
    ap.add_argument("--no-build", action="store_true", help="reuse a copy built before in --dest")
    a, pytest_args = ap.parse_known_args()  # the rest goes to pytest (default: the whole suite)
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
        env = {**os.environ, "PYTHONPATH": str(dest)}
        pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]  # no path: `testpaths`
        sys.exit(subprocess.run(pytest, cwd=dest, env=env).returncode)
    finally:
        if not a.keep and a.dest is None:
            shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()

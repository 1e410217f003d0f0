"""Packaging lives in pyproject.toml; this file only adds the opt-in compiled core.

    SERVESIM_COMPILE=1 pip install --no-build-isolation -e .     # (mypy installed: the `dev` extra)
    SERVESIM_COMPILE=1 python setup.py build_ext --inplace         # the same, in a checkout, without pip

compiles the engine's hot modules (`sim.core.native.COMPILED`) with mypyc into C extensions beside the sources; the
outputs are byte-identical to the pure-Python engine (benchmarks/SPEED.md, session 11). Without the variable this is
a plain pure-Python install that needs no compiler. `python -m sim.core.native` says which one runs; deleting the
`*.so` files next to the modules goes back to pure Python.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ext_modules = []
if os.environ.get("SERVESIM_COMPILE") == "1":
    from mypyc.build import mypycify

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sim.core.native import COMPILED

    ext_modules = mypycify(COMPILED, opt_level="3")

setup(ext_modules=ext_modules)

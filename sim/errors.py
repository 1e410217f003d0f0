"""User-facing errors: one class so the CLI can print a one-line message and exit 2.

The classes live in `hwprofiles.errors` (the lowest layer, which imports nothing of `sim`); this is the
name the simulator's modules use.
"""

from __future__ import annotations

from hwprofiles.errors import ServesimError, UnknownNameError

__all__ = ["ServesimError", "UnknownNameError"]

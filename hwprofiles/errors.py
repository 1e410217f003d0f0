"""The root of user-facing errors, in the lowest package so every layer can raise it without importing `sim`.

`sim.errors` re-exports these names; the CLI catches `ServesimError` and prints one line, exit 2.
"""

from __future__ import annotations


class ServesimError(Exception):
    """A mistake in the user's input (scenario, trace, option): reported without a traceback."""


class UnknownNameError(ServesimError, KeyError):
    """A name (model, hardware, kind, trace) that is not in a catalogue; lists the known names."""

    def __init__(self, what: str, name: str, known: list[str]) -> None:
        self.what, self.name, self.known = what, name, sorted(known)
        super().__init__(f"unknown {what} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])

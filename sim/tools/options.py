"""Errors about a scenario a command built from its options name the option, not the `<dict>` it built."""

from __future__ import annotations

from sim.errors import ServesimError


def blame_option(err: ServesimError, options: dict[str, str], default: str | None = None) -> ServesimError:
    """Rewrite `field: what` as `--option: what` (or `--option field.sub: what` for a field inside the one
    the option set); a field no option sets names `default`, or nothing when there is none."""
    msg = str(err).removeprefix("<dict>: ")
    field, _, rest = msg.partition(": ")
    for f, opt in options.items():
        if field == f:
            return ServesimError(f"{opt}: {rest}")
        if field.startswith(f + "."):
            return ServesimError(f"{opt} {msg}")
    return ServesimError(f"{default}: {msg}" if default else msg)

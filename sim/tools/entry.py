"""The `servesim` entry point as a function: click's usage errors become one line naming the option (its
usage box is for --help), a user mistake anywhere one line; both exit 2."""

from __future__ import annotations

import functools
from typing import Any

import typer

from sim.errors import ServesimError
from sim.tools.cli import app, err
from sim.tools.tables import safe


def _usage_error() -> type[Exception]:
    """click's UsageError (typer >= 0.26 vendors click as typer._click)."""
    import importlib

    try:
        mod = importlib.import_module("typer._click.exceptions")
    except ImportError:  # older typer: click itself
        mod = importlib.import_module("click.exceptions")
    err_type: type[Exception] = mod.UsageError
    return err_type


@functools.cache
def _command() -> Any:
    """The click command typer builds from `app` (built once: typer rebuilds it on every `app()` call)."""
    return typer.main.get_command(app)


def run_cli(argv: list[str] | None = None) -> int:
    """The command line as a function returning the exit status: a bad option or value is one line naming
    the option (click's usage box is for --help), a user mistake anywhere one line; both exit 2."""
    usage = _usage_error()
    try:
        rc = _command().main(args=argv, prog_name="servesim", standalone_mode=False)
    except usage as e:
        if type(e).__name__ == "NoArgsIsHelpError" or (not argv and argv is not None):
            return 2
        msg = " ".join(e.format_message().split())  # type: ignore[attr-defined]  # click's UsageError, typed as Exception here
        ctx = getattr(e, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "servesim"
        err.print(f"[bold red]error:[/] {safe(msg)} (see {safe(cmd)} --help)", highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        err.print("aborted", highlight=False)
        return 130
    except ServesimError as e:  # anything that slipped past a command's own handling
        err.print(f"[bold red]error:[/] {safe(' '.join(str(e).split()))}", highlight=False, soft_wrap=True)
        return 2
    return int(rc or 0) if isinstance(rc, int) else 0

"""The ``ldapsync`` command line: options parsed, an action called, its result
shown (:mod:`.render`).  The commands live in :mod:`.service_commands` and
:mod:`.inspect_commands`, the group and shared options in :mod:`.base`."""

from __future__ import annotations

import traceback

import click

from ldapsync.cli import inspect_commands, service_commands  # noqa: F401 - they add the commands to the group
from ldapsync.cli.base import cli
from ldapsync.errors import ExitCode, UserError

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a documented exit code."""
    try:
        cli.main(args=argv, prog_name="ldapsync", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        exc.show()
        return ExitCode.USAGE
    except click.Abort:
        click.echo("ldapsync: aborted", err=True)
        return 130
    except UserError as exc:
        click.echo(f"ldapsync: error: {exc}", err=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:
        return ExitCode.OK
    except Exception:  # noqa: BLE001 - anything else is a bug: say so, with the traceback
        traceback.print_exc()
        click.echo("ldapsync: internal error (a bug); please report it with the traceback above", err=True)
        return ExitCode.SOFTWARE
    return ExitCode.OK

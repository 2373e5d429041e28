"""The command line's frame: the ``ldapsync`` group, its logging, the shared
options, and loading the config; the commands are in the sibling modules."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

import click

from ldapsync import __version__, logs
from ldapsync.errors import ExitCode, UserError

if TYPE_CHECKING:  # loaded only by the commands that need them
    from ldapsync.config import Config
    from ldapsync.sync import Fetched

EPILOG = """\b
Exit codes:
  0  success
  1  diff/check found differences or problems
  64 bad command line
  65 bad input data
  66 input file missing, unreadable or not a regular file
  69 directory unavailable or its answer incomplete (serve: metrics port taken)
  70 internal error (a bug)
  73 output cannot be written (the old file is intact)
  74 written, but the state file could not be saved
  75 busy: another run holds the lock (serve: stopped, a sync abandoned)
  76 written, but the post-change command or its check failed
  77 refused by a safety limit (nothing written)
  78 invalid configuration, or one other users could change
"""

class FilePath(click.Path):
    """A file argument: "" would name the current directory."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value: str | os.PathLike[str], param: click.Parameter | None,
                ctx: click.Context | None) -> str | bytes | os.PathLike[str]:
        if not str(value).strip():
            self.fail("the path is empty", param, ctx)
        return super().convert(value, param, ctx)


CONFIG_OPTION = click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), envvar="LDAPSYNC_CONFIG",
    help="The ldapsync YAML configuration (or $LDAPSYNC_CONFIG).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON for scripts.")


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ldapsync")
@click.option("-v", "--verbose", count=True, help="More detail on stderr: -v what is read and changed, "
                                                   "-vv every LDAP search as the equivalent ldapsearch command.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object a line on stderr, for journald or ELK.")
def cli(verbose: int, quiet: bool, log_format: str) -> None:
    """Keep Prosody's shared contact groups (mod_groups) in step with a directory.

    ldapsync reads users and groups from LDAP, maps them to the groups file
    of Prosody's mod_groups through templates in a YAML config, and writes
    the file safely. It knows exactly what Prosody makes of that file: which
    contacts, names, groups and subscriptions each user gets at login.

    \b
    Typical use:
      ldapsync check -c ldapsync.yaml --connect    is the config right?
      ldapsync diff -c ldapsync.yaml               what would change?
      ldapsync run -c ldapsync.yaml                write it (cron, timer)
      ldapsync preview -c ldapsync.yaml alice@example.com
      ldapsync explain -c ldapsync.yaml alice@example.com
      ldapsync serve -c ldapsync.yaml              nightly, as a service
      ldapsync status -c ldapsync.yaml             for monitoring
    """
    levels = {0: logging.WARNING, 1: logging.INFO}
    logs.configure(logging.ERROR if quiet else levels.get(verbose, logging.DEBUG), log_format)


def load_config(path: str | None) -> Config:
    from ldapsync import config as configlib  # pydantic loads only for commands that need a config

    if not path:
        raise UserError("no configuration: give -c CONFIG or set LDAPSYNC_CONFIG", ExitCode.USAGE)
    return configlib.load(path)


def fetch_snapshot(config: Config) -> Fetched:
    """What the directory says now, mapped (findings logged)."""
    from ldapsync import sync  # ldap3 and jinja2 load only for commands that read the directory
    from ldapsync.directory import configured_directory

    snapshot = sync.fetch(config, configured_directory(config))
    sync.log_findings(snapshot.findings)
    return snapshot


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))

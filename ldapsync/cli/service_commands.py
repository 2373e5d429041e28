"""The commands that sync and look after the synced file: run, rollback,
serve and status."""

from __future__ import annotations

import sys

import click

from ldapsync.cli import render
from ldapsync.cli.base import CONFIG_OPTION, JSON_OPTION, cli, emit_json, load_config
from ldapsync.errors import ExitCode, UserError


@cli.command()
@CONFIG_OPTION
@click.option("-n", "--dry-run", is_flag=True, help="Show what would change; write nothing, run no command.")
@click.option("--force", is_flag=True, help="Write even past the safety limits, this once (needs --reason).")
@click.option("--reason", help="Why --force: logged with the change.")
@click.option("--full", is_flag=True, help="Read the whole directory, even when only its changes could be read.")
@JSON_OPTION
def run(config_path: str | None, dry_run: bool, force: bool, reason: str | None, full: bool, as_json: bool) -> None:
    """Sync: read the directory and write each groups file that changed.

    Every file is rendered, parsed back as Prosody reads it and compared with
    the intended groups before it is written; it is replaced atomically, and
    only when its content changed, keeping the old one as a backup (see
    'rollback'). Then the output's post_change_command runs (e.g. prosodyctl
    shell module reload groups example.com). Users see the change when they
    next log in.

    A change past the output's safety limits (by default: 20% of the groups
    or of the member lines removed, or everything; a group that becomes
    public; 20% more contacts through the public groups) writes nothing and
    exits 77; --force --reason TEXT accepts it once.

    With state.path set and a server that tracks changes (OpenLDAP with the
    syncprov overlay), a run after the first asks the directory only what
    changed since the last one, and ends at once when nothing did; --full
    reads everything.
    """
    from ldapsync.actions.run import run as sync_once

    if force and not (reason and reason.strip()):
        raise click.UsageError("--force needs --reason TEXT: say why the safety limits do not apply")
    outcome = sync_once(load_config(config_path), dry_run=dry_run,
                        force=reason.strip() if force and reason else None, full=full)
    assert outcome.result is not None  # run() raises for a sync without a result
    if as_json:
        emit_json(outcome.result.as_json(dry_run))
    else:
        render.print_run(outcome.result, dry_run)
    sys.exit(outcome.exit_code)


@cli.command()
@click.argument("version", type=click.IntRange(min=1), required=False, default=1)
@CONFIG_OPTION
@click.option("--output", "output_path", help="With several outputs: the output path to roll back.")
@click.option("--list", "list_only", is_flag=True, help="List the backups instead.")
def rollback(version: int, config_path: str | None, output_path: str | None, list_only: bool) -> None:
    """Put back an earlier version of a groups file (1, the default: the newest
    backup), atomically, then run its post-change command and check.

    Every run that changes a file keeps the old one (outputs[].backups, 5 by
    default). The file replaced by the rollback is kept as a backup too, so a
    rollback can be undone the same way. The next run writes the directory's
    view again, unless its safety limits refuse it.
    """
    from ldapsync import backups
    from ldapsync.actions.inputs import pick_output
    from ldapsync.actions.rollback import rollback as roll_back

    config = load_config(config_path)
    output = pick_output(config, output_path, None)
    if list_only:
        render.print_backups(output, backups.listing(output), backups.directory(output))
        return
    done = roll_back(config, output, version)
    render.print_rollback(done)
    sys.exit(done.exit_code)


@cli.command()
@CONFIG_OPTION
def serve(config_path: str | None) -> None:
    """Run as a service: sync on the config's cron schedule.

    One sync at a time (a manual 'ldapsync run' waits for the lock); a failed
    sync is retried with growing delays before the next scheduled one, and
    never stops the service. Logs the next run time at start and after each
    run. SIGTERM or SIGINT: let a sync under way finish (up to
    schedule.shutdown_timeout), then exit 0. SIGHUP: read the config again;
    an invalid new config is logged and the old one stays in force.
    """
    from ldapsync.service import Service

    if not config_path:
        raise UserError("no configuration: give -c CONFIG or set LDAPSYNC_CONFIG", ExitCode.USAGE)
    sys.exit(Service(config_path).serve())


@cli.command()
@CONFIG_OPTION
@click.option("--max-age", default="26h", show_default=True, help="Critical when the last success is older "
                                                                  "(s, m, h, d).")
@JSON_OPTION
def status(config_path: str | None, max_age: str, as_json: bool) -> None:
    """Report the last run, as a monitoring check (Nagios/Icinga plugin style).

    \b
    Exit status: 0 OK; 2 CRITICAL: the last run failed, or the last success
    is older than --max-age; 3 UNKNOWN: no run has been recorded (or no
    state.path in the config).
    """
    from ldapsync.actions.status import status as judge
    from ldapsync.config.values import duration

    limit = duration(max_age)
    if limit is None:
        raise click.BadParameter(f"{max_age!r} is not a duration such as 26h, 90m or 3600 (a positive number of "
                                 "seconds, or of s, m, h or d)", param_hint="'--max-age'")
    report = judge(load_config(config_path), limit, max_age)
    render.print_status(report, limit, as_json)
    sys.exit(report.code)

"""The commands that look without writing: check, preview, diff and explain."""

from __future__ import annotations

import sys

import click

from ldapsync.cli import render
from ldapsync.cli.base import CONFIG_OPTION, JSON_OPTION, FilePath, cli, fetch_snapshot, load_config
from ldapsync.errors import ExitCode


@cli.command()
@click.argument("file", required=False, type=FilePath())
@CONFIG_OPTION
@click.option("--connect", is_flag=True, help="With -c: also bind to the directory and count what it finds.")
@JSON_OPTION
def check(file: str | None, config_path: str | None, connect: bool, as_json: bool) -> None:
    """Lint a groups file, or check a configuration.

    \b
    ldapsync check FILE
      Reports every line that Prosody drops (invalid JIDs) or reads
      differently from how it looks: comment-looking lines (a groups file has
      no comments), a byte-order mark, text after a header's ']', CRLF line
      ends, members without a name (they wipe users' own names), names with
      stray spaces, control characters or invisible and bidi characters
      (zero-width spaces, right-to-left overrides), a contact named
      differently in two groups.
    ldapsync check -c CONFIG [--connect]
      The config is valid, templates compile, each output's directory is
      writable and its post-change command exists; with --connect, the bind
      works and the directory's users and groups are counted.

    Exits 0 when all is well and 1 when anything was found.
    """
    from ldapsync.actions import check as checks

    if file is not None:
        found = checks.check_file(file)
        render.print_file_check(found, as_json)
        sys.exit(ExitCode.CHANGES if found.diagnostics else ExitCode.OK)
    if not config_path:
        raise click.UsageError("give a groups FILE, or -c CONFIG")
    report = checks.check_config(config_path, load_config(config_path), connect)
    render.print_config_check(report, as_json)
    sys.exit(ExitCode.OK if report.ok else ExitCode.CHANGES)


@cli.command()
@click.argument("jid")
@click.option("--groups-file", "groups_file", type=FilePath(),
              help="Preview from this groups file (the file Prosody reads) instead of the directory.")
@CONFIG_OPTION
@click.option("--output", "output_path", help="With -c and several outputs: the output path to preview "
                                              "(default: the output whose host is JID's domain).")
@click.option("--host", help="The Prosody host (VirtualHost) the user is on; lets JID be a bare user name.")
@click.option("--roster", "personal", type=FilePath(),
              help="The user's personal roster as JSON (the format --json prints).")
@JSON_OPTION
def preview(jid: str, groups_file: str | None, config_path: str | None, output_path: str | None, host: str | None,
            personal: str | None, as_json: bool) -> None:
    """Show the roster Prosody sends to JID at login.

    From a groups file (--groups-file), or from the live directory (-c
    CONFIG) without writing anything. Applies the file exactly as mod_groups
    does: the user's own groups in file order, then the public groups; every
    shared contact gets subscription "both" and the name from the last group
    applied, replacing a personal name. JID is prepared as Prosody prepares
    it, so ALICE@EXAMPLE.COM means alice@example.com. Names are shown as the
    client reads them (XML turns a carriage return or tab into a space).
    """
    from ldapsync.actions import preview as previews
    from ldapsync.actions.inputs import read_groups

    user = previews.user_jid(jid, host)
    if groups_file:
        reading, source = read_groups(groups_file), groups_file
    elif config_path:
        config = load_config(config_path)
        reading, source = previews.directory_reading(config, output_path, user, fetch_snapshot(config))
    else:
        raise click.UsageError("give --groups-file FILE, or -c CONFIG")
    render.print_preview(previews.preview(user, reading, source, personal), as_json)


@cli.command("diff")
@click.argument("files", nargs=-1, type=FilePath())
@CONFIG_OPTION
@JSON_OPTION
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, metavar="N",
              help="Show at most N groups and N users in the text output (0: all).")
def diff_command(files: tuple[str, ...], config_path: str | None, as_json: bool, limit: int) -> None:
    """Show what changes: between two files, or pending from the directory.

    \b
    ldapsync diff OLD NEW         two groups files
    ldapsync diff -c CONFIG       each output file against the directory

    Lists groups added, removed and changed (members added, removed or
    renamed, public or not), then what each user's roster gains, loses or
    sees renamed, as Prosody would build it. Exits 0 when nothing changes
    and 1 when something does (for -c: changes are pending).
    """
    from ldapsync.actions import diff as diffs

    if len(files) == 2:
        results: list = [(None, diffs.diff_files(files[0], files[1]))]
    elif not files and config_path:
        from ldapsync.directory import configured_directory

        config = load_config(config_path)
        results = diffs.diff_pending(config, configured_directory(config))
    else:
        raise click.UsageError("give OLD and NEW groups files, or -c CONFIG")
    render.print_diffs(results, as_json, limit)
    sys.exit(ExitCode.CHANGES if any(r.changed for _, r in results) else ExitCode.OK)


@cli.command()
@click.argument("jid")
@CONFIG_OPTION
@JSON_OPTION
def explain(jid: str, config_path: str | None, as_json: bool) -> None:
    """Say why JID is in each shared group, or why it is left out.

    For each group: the directory group(s) behind it, the nesting path from
    that group down to the group that lists the user, and the rendered JID
    and display name. For a user in no group: disabled, filtered out, a JID
    Prosody rejects, or a JID that several entries give.
    """
    from ldapsync.actions.explain import explain as explained

    report = explained(fetch_snapshot(load_config(config_path)), jid)
    render.print_explanation(report, as_json)
    sys.exit(ExitCode.OK if report.groups else ExitCode.CHANGES)

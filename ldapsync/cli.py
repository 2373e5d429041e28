"""The ``ldapsync`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ldapsync import __version__
from ldapsync import diff as difflib
from ldapsync import groupsfile
from ldapsync import jid as jidlib
from ldapsync import roster as rosterlib
from ldapsync.errors import ExitCode, UserError
from ldapsync.output import plural, shown, table

EPILOG = """\b
Exit codes:
  0  success            1  diff/check found differences or problems
  64 bad command line   65 bad input data     66 input file missing or unreadable
  69 directory down     70 internal error     73 output cannot be written
  78 invalid configuration
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ldapsync")
def cli() -> None:
    """Keep Prosody's shared contact groups (mod_groups) in step with a directory.

    ldapsync reads and writes the groups file of Prosody's mod_groups, and
    knows exactly what Prosody makes of it: which contacts, names, groups and
    subscriptions each user gets at login.
    """


def _read_groups(path: str) -> groupsfile.GroupsFile:
    try:
        return groupsfile.read(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file", ExitCode.NOINPUT) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}", ExitCode.NOINPUT) from None


def _emit_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


# --- check ---------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def check(file: str, as_json: bool) -> None:
    """Lint a groups file the way Prosody reads it.

    Reports every line that Prosody drops (invalid JIDs) or reads differently
    from how it looks: comment-looking lines (a groups file has no comments),
    a byte-order mark, text after a header's ']', CRLF line ends, members
    without a name (they wipe users' own names), names with stray spaces or
    control characters, and a contact named differently in two groups.

    Exits 0 when the file is clean and 1 when anything was found.
    """
    parsed = _read_groups(file)
    diags = parsed.diagnostics
    if as_json:
        _emit_json(
            {
                "file": file,
                "clean": not diags,
                "groups": len(parsed.to_model().groups),
                "diagnostics": [
                    {"line": d.line, "severity": d.severity, "code": d.code, "message": d.message} for d in diags
                ],
            }
        )
    else:
        for d in diags:
            click.echo(f"{file}:{d.line}: {d.severity}: {d.message} [{d.code}]")
        errors = sum(d.severity == "error" for d in diags)
        model = parsed.to_model()
        summary = f"{plural(len(model.groups), 'group')}, {plural(model.member_count, 'member line')}"
        if diags:
            click.echo(f"{file}: {plural(len(diags), 'problem')} ({plural(errors, 'line')} Prosody skips or "
                       f"that break rosters, {len(diags) - errors} read differently than they look); {summary}")
        else:
            click.echo(f"{file}: clean; {summary}")
    sys.exit(ExitCode.CHANGES if diags else ExitCode.OK)


# --- preview -------------------------------------------------------------------


def _user_jid(raw: str, host: str | None) -> str:
    text = raw if (host is None or "@" in raw) else f"{raw}@{host}"
    prepared = jidlib.prep(text)
    if prepared is None or "@" not in prepared or "/" in prepared:
        raise UserError(f"{raw!r} is not a user's bare JID (user@host)", ExitCode.USAGE)
    if host is not None:
        wanted = jidlib.prep(host)
        if prepared.split("@", 1)[1] != wanted:
            raise UserError(f"{prepared} is not a user of host {host}", ExitCode.USAGE)
    return prepared


@cli.command()
@click.argument("jid")
@click.option("--groups-file", "groups_file", required=True, type=click.Path(dir_okay=False),
              help="The groups file Prosody reads (its groups_file option).")
@click.option("--host", help="The Prosody host (VirtualHost) the user is on; lets JID be a bare user name.")
@click.option("--roster", "personal", type=click.Path(dir_okay=False),
              help="The user's personal roster as JSON (the format --json prints).")
@click.option("--json", "as_json", is_flag=True, help="Print the roster as JSON.")
def preview(jid: str, groups_file: str, host: str | None, personal: str | None, as_json: bool) -> None:
    """Show the roster Prosody sends to JID at login.

    Applies the groups file exactly as mod_groups does: the user's own groups
    in file order, then the public groups; every shared contact gets
    subscription "both" and the name from the last group applied, replacing
    a personal name.  JID is prepared as Prosody prepares it, so
    ALICE@EXAMPLE.COM means alice@example.com.  Names are shown as the
    client reads them (XML turns a carriage return or tab into a space).
    """
    user = _user_jid(jid, host)
    parsed = _read_groups(groups_file)
    items: list[rosterlib.RosterItem] = []
    if personal:
        try:
            items = rosterlib.load_personal_roster(personal)
        except rosterlib.PersonalRosterError as exc:
            raise UserError(str(exc), ExitCode.DATAERR) from None
    result = rosterlib.received_items(rosterlib.build_roster(parsed, user, items))
    broken = [i.jid for i in result if not all(map(groupsfile.xml_safe, (i.name or "", *i.groups)))]
    if broken:
        raise UserError(
            f"Prosody cannot send {user} a roster: the name or a group of {', '.join(broken[:5])} holds characters "
            f"XML cannot carry (run 'ldapsync check {groups_file}')", ExitCode.DATAERR)
    if as_json:
        _emit_json([item.as_json() for item in result])
        return
    rows = [(i.jid, shown(i.name), i.subscription, ", ".join(i.groups)) for i in result]
    if rows:
        click.echo(table(("JID", "NAME", "SUBSCRIPTION", "GROUPS"), rows))
    own = parsed.memberships.get(user, ())
    public = len(set(parsed.public))
    click.echo(f"{user}: {plural(len(result), 'contact')}; member of {plural(len(set(own)), 'group')}, "
               f"{plural(public, 'public group')} {'applies' if public == 1 else 'apply'}")


# --- diff ----------------------------------------------------------------------


@cli.command("diff")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print all changes as JSON.")
@click.option("--limit", default=20, show_default=True, metavar="N",
              help="Show at most N groups and N users in the text output (0: all).")
def diff_command(old: str, new: str, as_json: bool, limit: int) -> None:
    """Compare two groups files: groups, members and every user's roster.

    Lists groups added, removed and changed (members added, removed or
    renamed, public or not), then what each user's roster gains, loses or
    sees renamed, as Prosody would build it.  Exits 0 when the files mean
    the same to Prosody and 1 when they differ.
    """
    result = difflib.diff(_read_groups(old), _read_groups(new))
    if as_json:
        _emit_json(result.as_json())
    else:
        _print_diff(result, limit)
    sys.exit(ExitCode.CHANGES if result.changed else ExitCode.OK)


def _print_diff(result: difflib.Diff, limit: int) -> None:
    def cut(seq):
        return seq if limit <= 0 else seq[:limit]

    for g in cut(result.groups):
        public = " (public)" if g.public_after or (g.public_after is None and g.public_before) else ""
        if g.status == "added":
            click.echo(f"+ group {g.group!r}{public}: {plural(len(g.added), 'member')}")
        elif g.status == "removed":
            click.echo(f"- group {g.group!r}{public}: {plural(len(g.removed), 'member')}")
        else:
            parts = []
            if g.public_before != g.public_after:
                parts.append("now public" if g.public_after else "no longer public")
            for count, label in ((len(g.added), "added"), (len(g.removed), "removed"), (len(g.renamed), "renamed")):
                if count:
                    parts.append(f"{count} {label}")
            click.echo(f"~ group {g.group!r}: " + ", ".join(parts))
        for jid, name in cut(g.added) if g.status != "removed" else ():
            click.echo(f"    + {jid} = {shown(name)}")
        for jid in cut(g.removed) if g.status != "added" else ():
            click.echo(f"    - {jid}")
        for jid, before, after in cut(g.renamed):
            click.echo(f"    ~ {jid}: {shown(before)} -> {shown(after)}")
    if limit > 0 and len(result.groups) > limit:
        click.echo(f"... and {len(result.groups) - limit} more groups (--limit 0 shows all)")
    if result.groups:
        click.echo("")
    for u in cut(result.users):
        click.echo(u.sentence())
    if limit > 0 and len(result.users) > limit:
        click.echo(f"... and {len(result.users) - limit} more users (--limit 0 shows all)")
    if result.others is not None and result.others.changed:
        click.echo(result.others.sentence())
    click.echo(("Summary: " if result.changed else "") + result.summary())


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
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

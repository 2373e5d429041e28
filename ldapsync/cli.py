"""The ``ldapsync`` command line."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial

import click

from ldapsync import __version__
from ldapsync import diff as difflib
from ldapsync import groupsfile
from ldapsync import jid as jidlib
from ldapsync import roster as rosterlib
from ldapsync import safeio
from ldapsync.errors import ExitCode, UserError
from ldapsync.output import plural, shown, table
from ldapsync.speed import ChildFailed, Parallel

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

log = logging.getLogger("ldapsync")


class _FilePath(click.Path):
    """A file argument: "" would name the current directory."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False)

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
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
    level = logging.ERROR if quiet else levels.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _PlainFormatter())
    root = logging.getLogger("ldapsync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"ldapsync: {record.levelname.lower()}: {message}"
        return message


def _load_config(path: str | None):
    from ldapsync import config as configlib  # pydantic loads only for commands that need a config

    if not path:
        raise UserError("no configuration: give -c CONFIG or set LDAPSYNC_CONFIG", ExitCode.USAGE)
    return configlib.load(path)


def _fetch(path: str | None):
    from ldapsync import sync  # ldap3 and jinja2 load only for commands that read the directory
    from ldapsync.directory import directory_for

    config = _load_config(path)
    snapshot = sync.fetch(config, directory_for(config.ldap, config.bind_password()))
    sync.log_findings(snapshot)
    return snapshot


def _read_groups(path: str) -> groupsfile.GroupsFile:
    try:
        return groupsfile.read(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file", ExitCode.NOINPUT) from None
    except safeio.UnsafeFile as exc:
        raise UserError(f"cannot read {exc}", ExitCode.NOINPUT) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}", ExitCode.NOINPUT) from None


def _both(read_old: Callable[[], groupsfile.GroupsFile],
          read_new: Callable[[], groupsfile.GroupsFile]) -> tuple[groupsfile.GroupsFile, groupsfile.GroupsFile]:
    """Two groups files, the old one read by a worker process on the other
    core while this one reads the new: parsing a 100,000-user file takes
    more than a second, sending it back a quarter of that."""
    job = Parallel(read_old)
    try:
        new = read_new()
    except BaseException:
        job.discard()
        raise
    try:
        return job.result(), new
    except ChildFailed as exc:
        raise UserError(f"reading the old file failed: {exc}", ExitCode.SOFTWARE) from None


def _emit_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


# --- run -----------------------------------------------------------------------


@cli.command()
@CONFIG_OPTION
@click.option("-n", "--dry-run", is_flag=True, help="Show what would change; write nothing, run no command.")
@click.option("--force", is_flag=True, help="Write even past the safety limits, this once (needs --reason).")
@click.option("--reason", help="Why --force: logged with the change.")
@JSON_OPTION
def run(config_path: str | None, dry_run: bool, force: bool, reason: str | None, as_json: bool) -> None:
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
    """
    from ldapsync import sync
    from ldapsync.service import recorded_run

    if force and not (reason and reason.strip()):
        raise click.UsageError("--force needs --reason TEXT: say why the safety limits do not apply")
    config = _load_config(config_path)
    outcome = recorded_run(config, dry_run=dry_run, force=reason.strip() if force else None)
    if outcome.result is None:
        raise UserError(outcome.error or "the sync failed", ExitCode(outcome.exit_code))
    result = outcome.result
    sync.log_findings(result.snapshot)
    if as_json:
        _emit_json(_run_json(result, dry_run))
    else:
        _print_run(result, dry_run)
    sys.exit(outcome.exit_code)


def _run_json(result, dry_run: bool) -> dict:
    return {
        "dry_run": dry_run,
        "exit_code": int(result.exit_code),
        "seconds": round(result.seconds, 3),
        "counts": result.snapshot.counts(),
        "outputs": [
            {
                "path": str(o.output.path),
                "changed": o.changed,
                "written": bool(o.written and o.written.changed),
                "groups": len(o.model.groups),
                "member_lines": o.model.member_count,
                "diff": o.diff.as_json() if o.diff else None,
                "post_change_command": None if o.command is None else {
                    "ok": o.command.ok, "returncode": o.command.returncode, "summary": o.command.describe()},
            }
            for o in result.outputs
        ],
        "findings": [{"kind": f.kind, "subject": f.subject, "message": f.message} for f in result.snapshot.findings],
    }


def _print_run(result, dry_run: bool) -> None:
    for o in result.outputs:
        size = f"{plural(len(o.model.groups), 'group')}, {plural(o.model.member_count, 'member line')}"
        if not o.changed:
            click.echo(f"{o.output.path}: unchanged ({size})")
            continue
        verb = "would change" if dry_run else "written"
        click.echo(f"{o.output.path}: {verb} ({size}): {o.diff.summary() if o.diff else ''}")
        for u in (o.diff.users[:10] if o.diff else ()):
            click.echo(f"  {u.sentence()}")
        if o.diff and len(o.diff.users) > 10:
            click.echo(f"  ... and {len(o.diff.users) - 10} more users ('ldapsync diff' shows all)")
        if o.diff and o.diff.others and o.diff.others.changed:
            click.echo(f"  {o.diff.others.sentence()}")
        if o.command is not None:
            click.echo(f"  post-change command: {o.command.describe()}")
        if not dry_run and o.diff and o.diff.users:
            click.echo("  users see the change when they next log in")
    c = result.snapshot.counts()
    left = ", ".join(f"{n} {k}" for k, n in c["users_left_out"].items()) or "none"
    ranged = f" ({c['ldap_range_searches']} for member ranges)" if c.get("ldap_range_searches") else ""
    click.echo(f"Summary: {c['users_read']} users and {c['groups_read']} groups read with {c['ldap_searches']} "
               f"searches{ranged} in {c['fetch_seconds']:.1f} s; {c['shared_groups']} shared groups, "
               f"{c['users_in_groups']} users in them; left out: {left}; done in {result.seconds:.1f} s")


# --- rollback --------------------------------------------------------------------


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
    from ldapsync.actions.rollback import rollback as roll_back

    config = _load_config(config_path)
    output = _pick_output(config, output_path, None)
    if list_only:
        rows = [(str(b.number), b.taken.isoformat(timespec="seconds"), str(b.size), str(b.path))
                for b in backups.listing(output)]
        if rows:
            click.echo(table(("VERSION", "TAKEN", "BYTES", "FILE"), rows))
        else:
            click.echo(f"{output.path}: no backups in {backups.directory(output)}")
        return
    done = roll_back(config, output, version)
    taken = done.backup.taken.isoformat(timespec="seconds")
    if not done.restored:
        click.echo(f"{output.path} already holds backup {version}; nothing to do")
        return
    click.echo(f"{output.path}: restored backup {version} of {taken} ({plural(done.groups, 'group')})")
    if done.applied is not None and done.applied.command is not None:
        click.echo(f"  post-change command: {done.applied.command.describe()}")
    if done.state_problem:
        click.echo(f"  {done.state_problem}", err=True)
    sys.exit(done.exit_code)


# --- serve and status ------------------------------------------------------------


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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    """Seconds from "26h", "90m" or "3600": a positive, finite number
    (nan, inf and -5m would make every age OK, or every age CRITICAL)."""
    unit = text[-1:].lower()
    number = text[:-1] if unit in _UNITS else text
    try:
        seconds = float(number) * _UNITS.get(unit, 1)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise click.BadParameter(f"{text!r} is not a duration such as 26h, 90m or 3600 (a positive number of "
                                 "seconds, or of s, m, h or d)", param_hint="'--max-age'")
    return seconds


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
    from ldapsync import state as statelib

    limit = _duration(max_age)
    config = _load_config(config_path)
    if config.state.path is None:
        click.echo("LDAPSYNC UNKNOWN - no state.path in the configuration: runs are not recorded")
        sys.exit(3)
    state, problem = statelib.read(config.state.path)
    if state is None:
        click.echo(f"LDAPSYNC UNKNOWN - {problem or f'no run recorded yet in {config.state.path}'}")
        sys.exit(3)
    now = time.time()
    success_at = state.last_success_at()
    age = None if success_at is None else now - success_at
    problems = []
    if state.result != "success":
        problems.append(f"last run failed (exit {state.exit_code}): {state.error}")
    if age is None:
        problems.append("no successful run recorded")
    elif age > limit:
        problems.append(f"last success {_ago(age)} ago, more than {max_age}")
    code = 2 if problems else 0
    if as_json:
        _emit_json({"status": "CRITICAL" if problems else "OK", "problems": problems,
                    "last_success_age_seconds": None if age is None else round(age),
                    "state": dataclasses.asdict(state)})
    else:
        word = "CRITICAL" if problems else "OK"
        detail = "; ".join(problems) if problems else (
            f"last success {_ago(age)} ago; {state.counts.get('shared_groups', 0)} groups, "
            f"{state.counts.get('users_in_groups', 0)} users")
        perf = (f"age={round(age) if age is not None else 'U'}s;;{round(limit)} "
                f"groups={state.counts.get('shared_groups', 0)} users={state.counts.get('users_in_groups', 0)} "
                f"failures={state.consecutive_failures}")
        click.echo(f"LDAPSYNC {word} - {detail} | {perf}")
    sys.exit(code)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- check ---------------------------------------------------------------------


@cli.command()
@click.argument("file", required=False, type=_FilePath())
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
    if file is not None:
        _check_file(file, as_json)
    elif config_path:
        _check_config(config_path, connect, as_json)
    else:
        raise click.UsageError("give a groups FILE, or -c CONFIG")


def _check_file(file: str, as_json: bool) -> None:
    parsed = _read_groups(file)
    diags = parsed.diagnostics
    model = parsed.to_model()
    if as_json:
        _emit_json({
            "file": file,
            "clean": not diags,
            "groups": len(model.groups),
            "diagnostics": [{"line": d.line, "severity": d.severity, "code": d.code, "message": d.message}
                            for d in diags],
        })
    else:
        for d in diags:
            click.echo(f"{file}:{d.line}: {d.severity}: {d.message} [{d.code}]")
        errors = sum(d.severity == "error" for d in diags)
        summary = f"{plural(len(model.groups), 'group')}, {plural(model.member_count, 'member line')}"
        if diags:
            click.echo(f"{file}: {plural(len(diags), 'problem')} ({plural(errors, 'line')} Prosody skips or "
                       f"that break rosters, {len(diags) - errors} read differently than they look); {summary}")
        else:
            click.echo(f"{file}: clean; {summary}")
    sys.exit(ExitCode.CHANGES if diags else ExitCode.OK)


def _check_config(path: str, connect: bool, as_json: bool) -> None:
    from ldapsync import sync
    from ldapsync.directory import directory_for
    from ldapsync.mapping import Templates

    config = _load_config(path)
    Templates(config.mapping)  # raises ConfigError naming the template
    problems: list[str] = []
    notes: list[str] = [f"{path}: configuration valid"]
    try:
        password = config.bind_password()
    except UserError as exc:
        problems.append(str(exc))
        password = None
    for output in config.outputs:
        directory = output.path.parent
        if not directory.is_dir():
            problems.append(f"outputs: {output.path}: the directory {directory} does not exist")
        elif not os.access(directory, os.W_OK):
            problems.append(f"outputs: {output.path}: the directory {directory} is not writable")
        else:
            notes.append(f"{output.path}: directory writable")
        command = output.post_change_command
        if command:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            if shutil.which(argv[0]) is None:
                problems.append(f"outputs: {output.path}: post_change_command: {argv[0]!r} not found")
            else:
                notes.append(f"{output.path}: post-change command {argv[0]} found")
    for key, path in (("state.path", config.state.path), ("the lock", config.lock_path)):
        problem = path and safeio.folder_problem(path.parent, path)
        if problem:
            problems.append(f"{key}: {problem}")
    counts = None
    if connect and not problems:
        snapshot = sync.fetch(config, directory_for(config.ldap, password))
        sync.log_findings(snapshot)
        counts = snapshot.counts()
        notes.append(f"bind as {config.ldap.bind_dn or 'anonymous'} works; {counts['users_read']} users, "
                     f"{counts['groups_read']} groups; {counts['shared_groups']} shared groups with "
                     f"{counts['users_in_groups']} users")
        if not counts["users_read"]:
            problems.append(f"users: no entries under {config.users.base!r} match {config.users.filter!r}")
        if not counts["groups_read"]:
            problems.append(f"groups: no entries under {config.groups.base!r} match {config.groups.filter!r}")
        # a run goes on past a collision, holding the name: here it is something to fix
        problems += [f"groups: {f}" for f in snapshot.findings if f.kind == "group-collision"]
        for key in snapshot.templates.user_attributes:
            if not any(e.attrs.get(key.lower()) for e in snapshot.members.users.values()):
                problems.append(f"mapping: the attribute {key!r} is used by a template but no user has it")
    if as_json:
        _emit_json({"config": path, "ok": not problems, "problems": problems, "notes": notes, "counts": counts})
    else:
        for n in notes:
            click.echo(n)
        for p in problems:
            click.echo(f"problem: {p}")
    sys.exit(ExitCode.CHANGES if problems else ExitCode.OK)


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


def _pick_output(config, output_path: str | None, user: str | None):
    if output_path:
        for o in config.outputs:
            if str(o.path) == output_path:
                return o
        raise UserError(f"--output {output_path}: no such output in the config", ExitCode.USAGE)
    if user and len(config.outputs) > 1:
        domain = user.split("@", 1)[-1]
        for o in config.outputs:
            if o.host and jidlib.prep(o.host) == domain:
                return o
    return config.outputs[0]


@cli.command()
@click.argument("jid")
@click.option("--groups-file", "groups_file", type=_FilePath(),
              help="Preview from this groups file (the file Prosody reads) instead of the directory.")
@CONFIG_OPTION
@click.option("--output", "output_path", help="With -c and several outputs: the output path to preview "
                                              "(default: the output whose host is JID's domain).")
@click.option("--host", help="The Prosody host (VirtualHost) the user is on; lets JID be a bare user name.")
@click.option("--roster", "personal", type=_FilePath(),
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
    user = _user_jid(jid, host)
    if groups_file:
        parsed = _read_groups(groups_file)
        source = groups_file
    elif config_path:
        from ldapsync import sync

        snapshot = _fetch(config_path)
        output = _pick_output(snapshot.config, output_path, user)
        _, text = sync.render_output(output, snapshot)
        parsed = groupsfile.parse(text)
        source = f"the directory (output {output.path})"
    else:
        raise click.UsageError("give --groups-file FILE, or -c CONFIG")
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
            f"XML cannot carry (run 'ldapsync check' on the groups file)", ExitCode.DATAERR)
    if as_json:
        _emit_json([item.as_json() for item in result])
        return
    rows = [(i.jid, shown(i.name), i.subscription, ", ".join(i.groups)) for i in result]
    if rows:
        click.echo(table(("JID", "NAME", "SUBSCRIPTION", "GROUPS"), rows))
    own = parsed.memberships.get(user, ())
    public = len(set(parsed.public))
    click.echo(f"{user}: {plural(len(result), 'contact')}; member of {plural(len(set(own)), 'group')}, "
               f"{plural(public, 'public group')} {'applies' if public == 1 else 'apply'} (from {source})")


# --- diff ----------------------------------------------------------------------


@cli.command("diff")
@click.argument("files", nargs=-1, type=_FilePath())
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
    if len(files) == 2:
        results = [(None, difflib.diff(*_both(partial(_read_groups, files[0]), partial(_read_groups, files[1]))))]
    elif not files and config_path:
        from ldapsync import sync

        snapshot = _fetch(config_path)
        results = []
        for output in snapshot.config.outputs:
            _, text = sync.render_output(output, snapshot)
            old = sync.current_text(output) or ""
            both = _both(partial(groupsfile.parse, old), partial(groupsfile.parse, text))
            del old, text
            results.append((str(output.path), difflib.diff(*both)))
    else:
        raise click.UsageError("give OLD and NEW groups files, or -c CONFIG")
    changed = any(r.changed for _, r in results)
    if as_json:
        data = [dict(r.as_json(), path=path) for path, r in results]
        _emit_json(data[0] if files else data)
    else:
        for path, r in results:
            if path:
                click.echo(f"== {path}")
            _print_diff(r, limit)
    sys.exit(ExitCode.CHANGES if changed else ExitCode.OK)


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


# --- explain -------------------------------------------------------------------


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
    snapshot = _fetch(config_path)
    user = jidlib.prep(jid) or jid
    mapped, members = snapshot.mapped, snapshot.members
    people = [p for p in mapped.people.values() if p.jid == user]
    node = user.split("@", 1)[0]
    uid_attr = snapshot.config.users.uid_attribute
    # also the lookalikes whose uid only preparation makes this node ("alice" + a zero-width space)
    related = [k for k, e in members.users.items()
               if any(v.lower() == node or (not v.isascii() and jidlib.nodeprep(v) == node)
                      for v in e.attrs.get(uid_attr.lower(), ()))]
    report: dict = {"jid": user, "entries": [], "groups": [], "left_out": []}
    for p in people:
        report["entries"].append({"dn": p.dn, "jid": p.jid, "name": p.name})
        for shared, group in sorted(mapped.groups.items()):
            if user not in group.members:
                continue
            paths = []
            for dn_key, entry in members.groups.items():
                if entry.dn in mapped.sources.get(shared, ()):
                    chain = members.path(dn_key, p.key, snapshot.config.groups.max_depth)
                    if chain is not None:
                        paths.append([members.groups[g].dn for g in chain])
            report["groups"].append({"group": shared, "public": group.public,
                                     "from": mapped.sources.get(shared, []), "paths": paths,
                                     "name_in_group": group.members[user]})
    for key in related:
        if key in mapped.left_out and key not in {p.key for p in people}:
            report["left_out"].append({"dn": members.users[key].dn, "why": mapped.left_out[key].why})
    if as_json:
        _emit_json(report)
    else:
        if not people and not report["left_out"]:
            click.echo(f"{user}: no directory user gives this JID, and none has {uid_attr}={node!r} "
                       f"(read {len(members.users)} users under {snapshot.config.users.base})")
        for e in report["entries"]:
            click.echo(f"{user} comes from {e['dn']}, shown as {shown(e['name'])}")
        for g in report["groups"]:
            kind = "public group" if g["public"] else "group"
            click.echo(f"  in {kind} {g['group']!r}" + (" (from the config)" if not g["paths"] and any(
                s.startswith("config") for s in g["from"]) else ""))
            for path in g["paths"]:
                via = " -> ".join(path)
                click.echo(f"    {'listed in' if len(path) == 1 else 'through'} {via}")
        if people and not report["groups"]:
            left = mapped.left_out.get(people[0].key)
            click.echo(f"  in no selected group ({left.why if left else 'no membership found'})")
        for item in report["left_out"]:
            click.echo(f"{item['dn']} is left out: {item['why']}")
    sys.exit(ExitCode.OK if report["groups"] else ExitCode.CHANGES)


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


if __name__ == "__main__":
    sys.exit(main())

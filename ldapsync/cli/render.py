"""What the commands print: each action's result as text for people, or its
``as_json()`` for scripts (every result type owns its JSON shape)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ldapsync import diff as difflib
from ldapsync.cli.base import emit_json
from ldapsync.output import plural, shown, table

if TYPE_CHECKING:  # loaded only by the commands that need them
    from ldapsync.actions.check import ConfigCheck, FileCheck
    from ldapsync.actions.explain import Explanation
    from ldapsync.actions.preview import Preview
    from ldapsync.actions.rollback import RolledBack
    from ldapsync.actions.status import Status
    from ldapsync.backups import Backup
    from ldapsync.config import Output
    from ldapsync.sync import RunResult

T = TypeVar("T")


def print_run(result: RunResult, dry_run: bool) -> None:
    for o in result.outputs:
        groups, member_lines = o.sizes
        size = f"{plural(groups, 'group')}, {plural(member_lines, 'member line')}"
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
    read = result.read
    if read.kind == "unchanged":
        sent = plural(read.entries, "entry", "entries")
        click.echo(f"Directory: nothing changed since the last run ({read.method}, {sent} sent)")
    elif read.kind == "incremental":
        click.echo(f"Directory: {plural(read.changed, 'entry', 'entries')} changed since the last run ({read.method}, "
                   f"{plural(read.entries, 'entry', 'entries')} sent)")
    elif read.reason and read.method != "off":  # else the server tracks no changes: nothing to say each run
        click.echo(f"Directory: read in full ({read.reason})")
    c = result.counts
    left = ", ".join(f"{n} {k}" for k, n in c.users_left_out.items()) or "none"
    ranged = f" ({c.ldap_range_searches} for member ranges)" if c.ldap_range_searches else ""
    click.echo(f"Summary: {c.users_read} users and {c.groups_read} groups read with {c.ldap_searches} "
               f"searches{ranged} in {c.fetch_seconds:.1f} s; {c.shared_groups} shared groups, "
               f"{c.users_in_groups} users in them; left out: {left}; done in {result.seconds:.1f} s")


def print_rollback(done: RolledBack) -> None:
    output, version = done.output, done.version
    if not done.restored:
        click.echo(f"{output.path} already holds backup {version}; nothing to do")
        return
    taken = done.backup.taken.isoformat(timespec="seconds")
    click.echo(f"{output.path}: restored backup {version} of {taken} ({plural(done.groups, 'group')})")
    if done.applied is not None and done.applied.command is not None:
        click.echo(f"  post-change command: {done.applied.command.describe()}")
    if done.state_problem:
        click.echo(f"  {done.state_problem}", err=True)


def print_backups(output: Output, listing: list[Backup], folder: Path) -> None:
    rows = [(str(b.number), b.taken.isoformat(timespec="seconds"), str(b.size), str(b.path)) for b in listing]
    if rows:
        click.echo(table(("VERSION", "TAKEN", "BYTES", "FILE"), rows))
    else:
        click.echo(f"{output.path}: no backups in {folder}")


def print_status(report: Status, limit_seconds: float, as_json: bool) -> None:
    from ldapsync.actions.status import ago

    if report.unknown is not None or report.state is None:
        click.echo(f"LDAPSYNC UNKNOWN - {report.unknown}")
        return
    if as_json:
        emit_json(report.as_json())
        return
    state, age = report.state, report.age
    groups, users = state.counts.get("shared_groups", 0), state.counts.get("users_in_groups", 0)
    detail = "; ".join(report.problems) if report.problems or age is None else (
        f"last success {ago(age)} ago; {groups} groups, {users} users; {_reads(report)}")
    snapshot_age = report.snapshot.age if report.snapshot is not None else None
    perf = (f"age={round(age) if age is not None else 'U'}s;;{round(limit_seconds)} "
            f"groups={groups} users={users} failures={state.consecutive_failures} "
            f"snapshot_age={round(snapshot_age) if snapshot_age is not None else 'U'}s")
    click.echo(f"LDAPSYNC {report.word} - {detail} | {perf}")


def _reads(report: Status) -> str:
    """The last full and incremental reads and the snapshot, for the status line."""
    from ldapsync.actions.status import ago

    full, incremental = report.read_age("full"), report.read_age("incremental")
    reads = (f"last full read {'never' if full is None else ago(full) + ' ago'}, "
             f"last incremental {'never' if incremental is None else ago(incremental) + ' ago'}")
    snap = report.snapshot
    if snap is None or snap.age is None:
        return f"{reads}; {snap.problem if snap is not None else 'no snapshot'}"
    return f"{reads}; snapshot {ago(snap.age)} old"


def print_file_check(check: FileCheck, as_json: bool) -> None:
    if as_json:
        emit_json(check.as_json())
        return
    diags, model = check.diagnostics, check.reading.to_model()
    for d in diags:
        click.echo(f"{check.path}:{d.line}: {d.severity}: {d.message} [{d.code}]")
    summary = f"{plural(len(model.groups), 'group')}, {plural(model.member_count, 'member line')}"
    if diags:
        click.echo(f"{check.path}: {plural(len(diags), 'problem')} ({plural(check.errors, 'line')} Prosody skips or "
                   f"that break rosters, {len(diags) - check.errors} read differently than they look); {summary}")
    else:
        click.echo(f"{check.path}: clean; {summary}")


def print_config_check(report: ConfigCheck, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_json())
        return
    for n in report.notes:
        click.echo(n)
    for p in report.problems:
        click.echo(f"problem: {p}")


def print_preview(view: Preview, as_json: bool) -> None:
    if as_json:
        emit_json(view.as_json())
        return
    rows = [(i.jid, shown(i.name), i.subscription, ", ".join(i.groups)) for i in view.items]
    if rows:
        click.echo(table(("JID", "NAME", "SUBSCRIPTION", "GROUPS"), rows))
    public = view.public_groups
    click.echo(f"{view.user}: {plural(len(view.items), 'contact')}; member of {plural(view.own_groups, 'group')}, "
               f"{plural(public, 'public group')} {'applies' if public == 1 else 'apply'} (from {view.source})")


def print_diffs(results: list[tuple[str | None, difflib.Diff]], as_json: bool, limit: int) -> None:
    if as_json:
        data = [dict(r.as_json(), path=path) for path, r in results]
        emit_json(data[0] if results and results[0][0] is None else data)
        return
    for path, r in results:
        if path:
            click.echo(f"== {path}")
        print_diff(r, limit)


def print_diff(result: difflib.Diff, limit: int) -> None:
    def cut(seq: Sequence[T]) -> Sequence[T]:
        return seq if limit <= 0 else seq[:limit]

    for g in cut(result.groups):
        _print_group_change(g, cut)
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


def _print_group_change(g: difflib.GroupChange, cut: Callable[[Sequence[Any]], Sequence[Any]]) -> None:
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


def print_explanation(report: Explanation, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_json())
        return
    user = report.jid
    if not report.entries and not report.left_out:
        click.echo(f"{user}: no directory user gives this JID, and none has {report.uid_attribute}={report.node!r} "
                   f"(read {report.users_read} users under {report.users_base})")
    for e in report.entries:
        click.echo(f"{user} comes from {e['dn']}, shown as {shown(e['name'])}")
    for g in report.groups:
        kind = "public group" if g["public"] else "group"
        from_config = not g["paths"] and any(s.startswith("config") for s in g["from"])
        click.echo(f"  in {kind} {g['group']!r}" + (" (from the config)" if from_config else ""))
        for path in g["paths"]:
            click.echo(f"    {'listed in' if len(path) == 1 else 'through'} {' -> '.join(path)}")
    if report.no_group_reason is not None:
        click.echo(f"  in no selected group ({report.no_group_reason})")
    for item in report.left_out:
        click.echo(f"{item['dn']} is left out: {item['why']}")

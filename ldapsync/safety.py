"""Limits that stop a write removing, or giving, much at once.

A misconfigured filter, a directory that answers half its groups, an
account that suddenly sees less: each looks like "these people left" and
would wipe contacts from rosters company-wide.  The other way round, a
group renamed into a public pattern gives every user of the host its
members.  Before any file is written, the change is measured against the
output's limits; a run that exceeds one writes nothing and says which
limit, with the figures.
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import filterfalse
from pathlib import Path

from ldapsync.config import Safety
from ldapsync.diff import Diff
from ldapsync.errors import ExitCode, UserError
from ldapsync.groupsfile import GroupsFile
from ldapsync.output import plural


class Refused(UserError):
    """A safety limit stopped the run; nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        text = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            "refused to write, a safety limit was exceeded (nothing written):\n" + text + "\n"
            "  If the change is intended: ldapsync run --force --reason \"WHY\"", ExitCode.REFUSED)


def check(path: Path, safety: Safety, old: GroupsFile | None, change: Diff, given: tuple[int, int],
          static_names: Collection[str] = ()) -> list[str]:
    """Every limit the change exceeds, as sentences.  ``old`` is the current
    file as read; None (no file: the first run) passes.  ``given`` is the
    groups and member lines the directory itself gives the output, and
    ``static_names`` the names of the config's static_groups: a config's
    own groups must not make an empty directory answer look full."""
    if old is None:
        return []
    problems: list[str] = []
    old_groups, old_members = old.size()
    if safety.refuse_empty:
        problems += _empty(path, old, given, static_names)
    t = change.totals
    problems += _limit(path, "groups removed", t["groups_removed"], old_groups,
                       safety.max_groups_removed, safety.max_groups_removed_percent, "max_groups_removed")
    problems += _limit(path, "member lines removed", t["members_removed"], old_members,
                       safety.max_members_removed, safety.max_members_removed_percent, "max_members_removed")
    if safety.max_contacts_lost is not None and t["contacts_lost"] > safety.max_contacts_lost:
        problems.append(f"{path}: {t['contacts_lost']} contacts would disappear from users' rosters; the limit "
                        f"is {safety.max_contacts_lost} (safety.max_contacts_lost)")
    if old_groups:  # a file without groups (e.g. created empty for Prosody) is a first run too
        problems += _gains(path, safety, old, change)
    return problems


def _empty(path: Path, old: GroupsFile, given: tuple[int, int], static_names: Collection[str]) -> list[str]:
    """safety.refuse_empty: judged on what the directory gives against what
    the current file holds besides the static groups."""
    static = frozenset(static_names)
    from_directory = [members for name, members in old.visible_groups().items() if name not in static]
    old_groups, old_members = len(from_directory), sum(map(len, from_directory))
    besides = " besides static_groups" if static else ""
    given_groups, given_members = given
    if old_groups and not given_groups:
        return [f"{path}: the directory gives no groups at all; the current file has {old_groups}{besides} "
                "(safety.refuse_empty)"]
    if old_members and not given_members:
        return [f"{path}: the directory gives no members at all; the current file has {old_members}{besides} "
                "(safety.refuse_empty)"]
    return []


def _gains(path: Path, safety: Safety, old: GroupsFile, change: Diff) -> list[str]:
    """The limits on what users gain: a group renamed into a public pattern
    gives every user of the host its members at once."""
    problems = []
    became_public = sorted(g.group for g in change.groups if g.public_after and not g.public_before)
    limit = safety.max_public_groups_added
    if limit is not None and len(became_public) > limit:
        shown = ", ".join(repr(name) for name in became_public[:5]) + (", ..." if len(became_public) > 5 else "")
        problems.append(f"{path}: {plural(len(became_public), 'group')} would become visible to every user "
                        f"({shown}); the limit is {limit} (safety.max_public_groups_added)")
    gained = change.others.gained if change.others is not None else 0
    if gained:
        limit = safety.max_public_contacts_gained
        if limit is not None and gained > limit:
            problems.append(f"{path}: every user would gain {plural(gained, 'contact')} through the public "
                            f"groups; the limit is {limit} (safety.max_public_contacts_gained)")
        percent = safety.max_public_contacts_gained_percent
        base = public_contacts(old) if percent is not None else 0
        if percent is not None and (not base or gained * 100 > percent * base):
            before = f"which gave {base} before ({gained * 100 / base:.0f}%)" if base else "which gave none before"
            problems.append(f"{path}: every user would gain {plural(gained, 'contact')} through the public groups, "
                            f"{before}; the limit is {percent:g}% (safety.max_public_contacts_gained_percent)")
    limit = safety.max_contacts_gained
    if limit is not None and change.totals["contacts_gained"] > limit:
        problems.append(f"{path}: {change.totals['contacts_gained']} contacts would be added to users' rosters; "
                        f"the limit is {limit} (safety.max_contacts_gained)")
    return problems


def public_contacts(gf: GroupsFile) -> int:
    """How many contacts the public groups give a user in no group: the
    members of all of them, each once.  The largest is never copied."""
    groups = sorted((gf.groups.get(name, {}) for name in set(gf.public)), key=len, reverse=True)
    if not groups:
        return 0
    largest = groups[0]
    extra: set[str] = set()
    for members in groups[1:]:
        extra.update(filterfalse(largest.__contains__, members))
    return len(largest) + len(extra)


def _limit(path: Path, what: str, count: int, total: int, max_count: int | None, max_percent: float | None,
           key: str) -> list[str]:
    out = []
    if max_count is not None and count > max_count:
        out.append(f"{path}: {count} {what}; the limit is {max_count} (safety.{key})")
    if max_percent is not None and total and count * 100 > max_percent * total:
        out.append(f"{path}: {count} of {total} {what} ({count * 100 / total:.0f}%); the limit is "
                   f"{max_percent:g}% (safety.{key}_percent)")
    return out

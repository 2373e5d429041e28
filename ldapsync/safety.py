"""Limits that stop a write removing much at once.

A misconfigured filter, a directory that answers half its groups, an
account that suddenly sees less: each looks like "these people left" and
would wipe contacts from rosters company-wide.  Before any file is written,
the change is measured against the output's limits; a run that exceeds one
writes nothing and says which limit, with the figures.
"""

from __future__ import annotations

from pathlib import Path

from ldapsync.config import Safety
from ldapsync.diff import Diff
from ldapsync.errors import ExitCode, UserError
from ldapsync.model import GroupsModel


class Refused(UserError):
    """A safety limit stopped the run; nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        text = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            "refused to write, a safety limit was exceeded (nothing written):\n" + text + "\n"
            "  If the change is intended: ldapsync run --force --reason \"WHY\"", ExitCode.REFUSED)


def check(path: Path, safety: Safety, old: tuple[int, int] | None, new: GroupsModel, change: Diff) -> list[str]:
    """Every limit the change to ``new`` exceeds, as sentences; ``old`` is
    the size of the current file (groups, member lines).  No current file
    (the first run) passes."""
    if old is None:
        return []
    problems: list[str] = []
    old_groups, old_members = old
    if safety.refuse_empty:
        if old_groups and not new.groups:
            problems.append(f"{path}: the directory gives no groups at all; the current file has {old_groups} "
                            "(safety.refuse_empty)")
        elif old_members and not new.member_count:
            problems.append(f"{path}: the directory gives no members at all; the current file has {old_members} "
                            "(safety.refuse_empty)")
    t = change.totals
    problems += _limit(path, "groups removed", t["groups_removed"], old_groups,
                       safety.max_groups_removed, safety.max_groups_removed_percent, "max_groups_removed")
    problems += _limit(path, "member lines removed", t["members_removed"], old_members,
                       safety.max_members_removed, safety.max_members_removed_percent, "max_members_removed")
    if safety.max_contacts_lost is not None and t["contacts_lost"] > safety.max_contacts_lost:
        problems.append(f"{path}: {t['contacts_lost']} contacts would disappear from users' rosters; the limit "
                        f"is {safety.max_contacts_lost} (safety.max_contacts_lost)")
    return problems


def _limit(path: Path, what: str, count: int, total: int, max_count: int | None, max_percent: float | None,
           key: str) -> list[str]:
    out = []
    if max_count is not None and count > max_count:
        out.append(f"{path}: {count} {what}; the limit is {max_count} (safety.{key})")
    if max_percent is not None and total and count * 100 > max_percent * total:
        out.append(f"{path}: {count} of {total} {what} ({count * 100 / total:.0f}%); the limit is "
                   f"{max_percent:g}% (safety.{key}_percent)")
    return out

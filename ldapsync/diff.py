"""What changes between two groups files: per group, and per user's roster.

The per-user roster impact is worked out in :mod:`ldapsync.rosterdiff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ldapsync.groupsfile import GroupsFile, lines_differing
from ldapsync.output import plural
from ldapsync.rosterdiff import Interned, RosterChange, RosterChanges, roster_changes
from ldapsync.speed import without_cycle_collector

_EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True)
class GroupChange:
    """One group that differs: ``status`` is added, removed or changed."""

    group: str
    status: str
    public_before: bool | None
    public_after: bool | None
    added: tuple[tuple[str, str], ...] = ()  # (jid, name)
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str, str], ...] = ()  # (jid, old name, new name)

    def as_json(self) -> dict:
        return {
            "group": self.group,
            "status": self.status,
            "public_before": self.public_before,
            "public_after": self.public_after,
            "added": [{"jid": j, "name": n} for j, n in self.added],
            "removed": list(self.removed),
            "renamed": [{"jid": j, "before": a, "after": b} for j, a, b in self.renamed],
        }


@dataclass(frozen=True)
class Diff:
    groups: tuple[GroupChange, ...] = ()
    users: RosterChanges = field(default_factory=RosterChanges)  # users in either file whose roster changes, by JID
    others: RosterChange | None = None
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.groups or self.users or (self.others and self.others.changed))

    def summary(self) -> str:
        t = self.totals
        if not self.changed:
            return "no changes"
        return (
            f"{plural(t['groups_added'], 'group')} added, {t['groups_removed']} removed, "
            f"{t['groups_changed']} changed; "
            f"{plural(t['members_added'], 'member line')} added, {t['members_removed']} removed, "
            f"{t['members_renamed']} renamed; {plural(t['users_affected'], 'roster')} change "
            f"({t['contacts_gained']} contacts gained, {t['contacts_lost']} lost, "
            f"{t['contacts_renamed']} renamed, {t['contacts_regrouped']} regrouped)"
        )

    def as_json(self) -> dict:
        return {
            "changed": self.changed,
            "totals": self.totals,
            "groups": [g.as_json() for g in self.groups],
            "users": [u.as_json() for u in self.users],
            "others": self.others.as_json() if self.others else None,
        }


@without_cycle_collector
def diff(old: GroupsFile, new: GroupsFile, interned: Interned | None = None) -> Diff:
    """What changes from ``old`` to ``new``; ``interned``: what the last diff
    of this process left (see :class:`ldapsync.rosterdiff.Interned`)."""
    interned = interned or Interned()
    groups = group_changes(old, new, interned)
    users, others = roster_changes(old, new, interned)
    totals = {
        "groups_added": sum(g.status == "added" for g in groups),
        "groups_removed": sum(g.status == "removed" for g in groups),
        "groups_changed": sum(g.status == "changed" for g in groups),
        "members_added": sum(len(g.added) for g in groups),
        "members_removed": sum(len(g.removed) for g in groups),
        "members_renamed": sum(len(g.renamed) for g in groups),
        "users_affected": len(users),
    }
    totals.update(zip(("contacts_gained", "contacts_lost", "contacts_renamed", "contacts_regrouped"),
                      users.totals(), strict=True))
    return Diff(tuple(groups), users, others, totals)


def group_changes(old: GroupsFile, new: GroupsFile, interned: Interned | None = None) -> list[GroupChange]:
    """Groups added, removed or changed (members, names, public flag), by name."""
    differing = interned.lines_differing if interned is not None else lines_differing
    before, after = old.visible_groups(), new.visible_groups()
    pub_before, pub_after = old.public_names, new.public_names
    changes = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        was_public = None if a is None else name in pub_before
        is_public = None if b is None else name in pub_after
        if a is not None and b is not None and was_public == is_public and (a is b or a == b):
            continue  # a reading updated from the other shares its unchanged groups: no need to compare them
        a = a or _EMPTY
        b = b or _EMPTY
        lines = [(j, b[j]) for j in differing(a, b)] if a else b.items()  # added, and renamed
        added = tuple(sorted((j, n) for j, n in lines if j not in a))
        removed = tuple(sorted(a.keys() - b.keys()))
        renamed = tuple(sorted((j, a[j], n) for j, n in lines if j in a))
        status = "added" if was_public is None else "removed" if is_public is None else "changed"
        changes.append(GroupChange(name, status, was_public, is_public, added, removed, renamed))
    return changes


__all__ = ["Diff", "GroupChange", "Interned", "RosterChange", "diff", "group_changes", "roster_changes"]

"""What changes between two groups files: per group, and per user's roster.

The roster impact is exact (it follows :mod:`ldapsync.roster` rule for rule)
without building every user's roster twice: with an all-staff group of
100,000 members that would be 10^10 entries.  For each user only the
contacts that can change are looked at (members of groups whose content
changed, or of groups the user joined or left); groups that apply to many
users ("big": public groups and large groups) are evaluated once per
combination of big groups and then corrected per user for the few contacts
that the user's small groups also hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ldapsync.groupsfile import GroupsFile

BIG_GROUP = 1000  # members; above this a group is evaluated once, not per user

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
class RosterChange:
    """How one user's roster changes.  ``user`` is None for "every user of the
    host who is in no group" (they get only the public groups)."""

    user: str | None
    gained: int = 0
    lost: int = 0
    renamed: int = 0
    regrouped: int = 0
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.gained or self.lost or self.renamed or self.regrouped or self.joined or self.left)

    def sentence(self) -> str:
        who = self.user or "every other user of the host"
        parts = []
        for count, verb in ((self.gained, "gains"), (self.lost, "loses")):
            if count:
                parts.append(f"{verb} {_contacts(count)}")
        if self.renamed:
            parts.append(f"sees {_contacts(self.renamed)} renamed")
        if self.regrouped:
            parts.append(f"sees {_contacts(self.regrouped)} change groups")
        if self.joined:
            parts.append("joins " + ", ".join(repr(g) for g in self.joined))
        if self.left:
            parts.append("leaves " + ", ".join(repr(g) for g in self.left))
        return f"{who} " + (", ".join(parts) if parts else "sees no change")

    def as_json(self) -> dict:
        return {
            "user": self.user,
            "gained": self.gained,
            "lost": self.lost,
            "renamed": self.renamed,
            "regrouped": self.regrouped,
            "joined": list(self.joined),
            "left": list(self.left),
        }


def _contacts(n: int) -> str:
    return f"{n} contact" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class Diff:
    groups: tuple[GroupChange, ...] = ()
    users: tuple[RosterChange, ...] = ()  # users in either file whose roster changes, by JID
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
            f"{t['groups_added']} groups added, {t['groups_removed']} removed, {t['groups_changed']} changed; "
            f"{t['members_added']} member lines added, {t['members_removed']} removed, {t['members_renamed']} renamed; "
            f"{t['users_affected']} users' rosters change "
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


def diff(old: GroupsFile, new: GroupsFile, *, big_group: int = BIG_GROUP) -> Diff:
    groups = group_changes(old, new)
    users, others = roster_changes(old, new, big_group=big_group)
    totals = {
        "groups_added": sum(g.status == "added" for g in groups),
        "groups_removed": sum(g.status == "removed" for g in groups),
        "groups_changed": sum(g.status == "changed" for g in groups),
        "members_added": sum(len(g.added) for g in groups),
        "members_removed": sum(len(g.removed) for g in groups),
        "members_renamed": sum(len(g.renamed) for g in groups),
        "users_affected": len(users),
        "contacts_gained": sum(u.gained for u in users),
        "contacts_lost": sum(u.lost for u in users),
        "contacts_renamed": sum(u.renamed for u in users),
        "contacts_regrouped": sum(u.regrouped for u in users),
    }
    return Diff(tuple(groups), tuple(users), others, totals)


def _visible(gf: GroupsFile) -> dict[str, Mapping[str, str]]:
    return {name: m for name, m in gf.groups.items() if m or name in gf.declared}


def group_changes(old: GroupsFile, new: GroupsFile) -> list[GroupChange]:
    """Groups added, removed or changed (members, names, public flag), by name."""
    before, after = _visible(old), _visible(new)
    pub_before, pub_after = old.public_names, new.public_names
    changes = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        was_public = None if a is None else name in pub_before
        is_public = None if b is None else name in pub_after
        if a is not None and b is not None and a == b and was_public == is_public:
            continue
        a = a or _EMPTY
        b = b or _EMPTY
        added = tuple(sorted((j, n) for j, n in b.items() if j not in a))
        removed = tuple(sorted(j for j in a if j not in b))
        renamed = tuple(sorted((j, a[j], n) for j, n in b.items() if j in a and a[j] != n))
        status = "added" if was_public is None else "removed" if is_public is None else "changed"
        changes.append(GroupChange(name, status, was_public, is_public, added, removed, renamed))
    return changes


# --- roster impact -------------------------------------------------------------

_GAINED, _LOST, _RENAMED, _REGROUPED = range(4)


def _state(groups: Mapping[str, Mapping[str, str]], applied: Sequence[str], contact: str):
    """(name, groups) of ``contact`` in a roster built from ``applied``, or None."""
    name = None
    found: set[str] | None = None
    for g in applied:
        members = groups.get(g)
        if members is not None:
            n = members.get(contact)
            if n is not None:
                name = n
                if found is None:
                    found = {g}
                else:
                    found.add(g)
    return None if found is None else (name, found)


def _classify(before, after, counts: list[int], sign: int) -> None:
    if before is None:
        if after is not None:
            counts[_GAINED] += sign
    elif after is None:
        counts[_LOST] += sign
    else:
        if before[0] != after[0]:
            counts[_RENAMED] += sign
        if before[1] != after[1]:
            counts[_REGROUPED] += sign


def _order_kept(a: Sequence[str], b: Sequence[str]) -> bool:
    """True when the groups both lists apply come in the same order (so a
    contact that only common, unchanged groups hold keeps its name)."""
    if a == b:
        return True
    sa, sb = set(a), set(b)
    return [g for g in a if g in sb] == [g for g in b if g in sa]


class _Sides:
    def __init__(self, old: GroupsFile, new: GroupsFile) -> None:
        self.old, self.new = old.groups, new.groups
        self.changed_in: dict[str, list[str]] = {}
        for g in old.groups.keys() | new.groups.keys():
            a, b = old.groups.get(g, _EMPTY), new.groups.get(g, _EMPTY)
            if a != b:
                self.changed_in[g] = [c for c in a.keys() | b.keys() if a.get(c) != b.get(c)]

    def candidates(self, groups_old: Sequence[str], groups_new: Sequence[str], kept: bool) -> set[str]:
        """Contacts whose state can differ, given the groups applied on each side."""
        so, sn = set(groups_old), set(groups_new)
        out: set[str] = set()
        for g in so | sn:
            if kept and g in so and g in sn:
                out.update(self.changed_in.get(g, ()))
            else:
                if g in so:
                    out.update(self.old.get(g, _EMPTY))
                if g in sn:
                    out.update(self.new.get(g, _EMPTY))
        return out

    def members_either(self, g: str) -> Iterable[str]:
        a, b = self.old.get(g, _EMPTY), self.new.get(g, _EMPTY)
        return a.keys() | b.keys() if a is not b and a != b else a.keys()


def roster_changes(
    old: GroupsFile, new: GroupsFile, *, big_group: int = BIG_GROUP
) -> tuple[list[RosterChange], RosterChange | None]:
    """Per-user roster impact of going from ``old`` to ``new``."""
    sides = _Sides(old, new)
    public_old, public_new = list(old.public), list(new.public)
    big = {
        g
        for g in old.groups.keys() | new.groups.keys()
        if len(old.groups.get(g, _EMPTY)) > big_group or len(new.groups.get(g, _EMPTY)) > big_group
    } | set(public_old) | set(public_new)
    # Contacts that changed inside some big group: the only ones a user whose
    # big groups stay the same can see change through them.
    big_changed = set().union(*(sides.changed_in.get(g, ()) for g in big))
    overlap: dict[str, list[str]] = {}  # small group -> its members in big_changed

    sig_cache: dict[tuple, tuple[list[int], set[str]]] = {}

    def aggregate(big_old: tuple[str, ...], big_new: tuple[str, ...], kept: bool):
        key = (big_old, big_new, kept)
        hit = sig_cache.get(key)
        if hit is None:
            cands = sides.candidates(big_old, big_new, kept)
            counts = [0, 0, 0, 0]
            for c in cands:
                _classify(_state(sides.old, big_old, c), _state(sides.new, big_new, c), counts, 1)
            hit = sig_cache[key] = (counts, cands)
        return hit

    changes = []
    for user in sorted(old.memberships.keys() | new.memberships.keys()):
        own_old = old.memberships.get(user, ())
        own_new = new.memberships.get(user, ())
        applied_old = [*own_old, *public_old]
        applied_new = [*own_new, *public_new]
        kept = _order_kept(applied_old, applied_new)
        big_old = tuple(g for g in applied_old if g in big)
        big_new = tuple(g for g in applied_new if g in big)
        small_old = [g for g in applied_old if g not in big]
        small_new = [g for g in applied_new if g not in big]
        agg, big_cands = aggregate(big_old, big_new, kept)
        exact = sides.candidates(small_old, small_new, kept) if (small_old or small_new) else set()
        # Contacts counted in the aggregate that a small group of this user
        # also holds: their true state depends on that small group too.
        if kept and big_old == big_new:
            for g in set(small_old) | set(small_new):
                ov = overlap.get(g)
                if ov is None:
                    ov = overlap[g] = [c for c in sides.members_either(g) if c in big_changed]
                exact.update(c for c in ov if c in big_cands)
        else:
            for g in set(small_old) | set(small_new):
                exact.update(c for c in sides.members_either(g) if c in big_cands)
        counts = list(agg)
        if user in big_cands:
            exact.add(user)
        for c in exact:
            if c in big_cands:
                _classify(_state(sides.old, big_old, c), _state(sides.new, big_new, c), counts, -1)
            if c != user:
                _classify(_state(sides.old, applied_old, c), _state(sides.new, applied_new, c), counts, 1)
        joined = tuple(sorted(set(own_new) - set(own_old)))
        left = tuple(sorted(set(own_old) - set(own_new)))
        change = RosterChange(user, *counts, joined=joined, left=left)
        if change.changed:
            changes.append(change)
    others = None
    if public_old or public_new:
        agg, _ = aggregate(tuple(public_old), tuple(public_new), _order_kept(public_old, public_new))
        others = RosterChange(None, *agg)
    return changes, others

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

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import filterfalse

from ldapsync.groupsfile import GroupsFile
from ldapsync.output import plural
from ldapsync.speed import without_cycle_collector

_EMPTY: Mapping[str, str] = {}
_SHARED_GROUP = 1000  # members; filtering by a group this large is worth caching


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
    return plural(n, "contact")


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
            f"{plural(t['groups_added'], 'group')} added, {t['groups_removed']} removed, {t['groups_changed']} changed; "
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
def diff(old: GroupsFile, new: GroupsFile) -> Diff:
    groups = group_changes(old, new)
    users, others = roster_changes(old, new)
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


class _Sides:
    """Both files, with what changed inside each group worked out once."""

    def __init__(self, old: GroupsFile, new: GroupsFile) -> None:
        self.old, self.new = old.groups, new.groups
        self.changed_in: dict[str, list[str]] = {}  # group -> contacts added, removed or renamed in it
        self.added: dict[str, set[str]] = {}
        self.removed: dict[str, set[str]] = {}
        for g in old.groups.keys() | new.groups.keys():
            a, b = old.groups.get(g, _EMPTY), new.groups.get(g, _EMPTY)
            if a != b:
                self.changed_in[g] = [c for c in a.keys() | b.keys() if a.get(c) != b.get(c)]
                self.added[g] = {c for c in self.changed_in[g] if c not in a}
                self.removed[g] = {c for c in self.changed_in[g] if c not in b}
        # Contacts with one name per side (every file ldapsync writes) keep it
        # whatever order groups are applied in; the others need the order.
        self.by_order: set[str] = set(old.several_names | new.several_names)
        self.renamed: set[str] = set()
        for c in set().union(*self.changed_in.values()) - self.by_order:
            before = next((self.old[g][c] for g in old.memberships.get(c, ())), None)
            after = next((self.new[g][c] for g in new.memberships.get(c, ())), None)
            if before is not None and after is not None and before != after:
                self.renamed.add(c)


def roster_changes(old: GroupsFile, new: GroupsFile) -> tuple[list[RosterChange], RosterChange | None]:
    """Per-user roster impact of going from ``old`` to ``new``.

    Users whose own member lines stay the same ("steady" users: nearly all of
    them on a nightly run) are handled contact by contact (:class:`_Steady`);
    the few whose groups changed are handled user by user (:class:`_Moving`).
    """
    sides = _Sides(old, new)
    public_old, public_new = list(old.public), list(new.public)
    users = sorted(old.memberships.keys() | new.memberships.keys())
    steady: set[str] = set()
    if public_old == public_new:
        steady = {u for u in users if old.memberships.get(u, ()) == new.memberships.get(u, ())}
    moving = _Moving(sides, old, new)
    steady_counts, everyone = _Steady(sides, old, new, steady).run()

    changes = []
    for user in users:
        if user in steady:  # the same groups on both sides: none joined or left
            counts = steady_counts(user)
            if any(counts):
                changes.append(RosterChange(user, *counts))
            continue
        own_old = old.memberships.get(user, ())
        own_new = new.memberships.get(user, ())
        counts = moving.counts(user, own_old, own_new)
        joined = tuple(sorted(set(own_new) - set(own_old)))
        left = tuple(sorted(set(own_old) - set(own_new)))
        change = RosterChange(user, *counts, joined=joined, left=left)
        if change.changed:
            changes.append(change)
    others = None
    if public_old or public_new:
        counts = everyone if public_old == public_new else moving.counts(None, (), ())
        others = RosterChange(None, *counts)
    return changes, others


class _Steady:
    """Impact on users whose applied groups are the same in both files.

    For such a user only contacts that changed somewhere can change, and how
    depends on three facts about the user: shares a group the contact stays
    in (a), shares a group the contact left (b), shares a group the contact
    joined (d).  Users who share none of the contact's private groups all get
    the same effect, kept once in ``everyone``; members of the contact's
    largest private group get theirs kept once per group; only the members of
    its other groups are visited one by one.
    """

    def __init__(self, sides: _Sides, old: GroupsFile, new: GroupsFile, steady: set[str]) -> None:
        self.sides, self.old, self.new, self.steady = sides, old, new, steady
        self.public = set(old.public)
        self.everyone = [0, 0, 0, 0]
        self.per_group: dict[str, list[int]] = {}
        self.per_user: dict[str, list[int]] = {}

    def run(self):
        if list(self.old.public) == list(self.new.public):
            for contact in set().union(*self.sides.changed_in.values()):
                self._contact(contact)

        def counts(user: str) -> list[int]:
            total = list(self.everyone)
            for g in set(self.old.memberships.get(user, ())):
                extra = self.per_group.get(g)
                if extra is not None:
                    for i in range(4):
                        total[i] += extra[i]
            extra = self.per_user.get(user)
            if extra is not None:
                for i in range(4):
                    total[i] += extra[i]
            return total

        return counts, self.everyone

    def _members(self, g: str) -> Iterable[str]:
        a, b = self.sides.old.get(g, _EMPTY), self.sides.new.get(g, _EMPTY)
        keys = a.keys() | b.keys() if a != b else a.keys()
        return [u for u in keys if u in self.steady]

    def _size(self, g: str) -> int:
        return len(self._keys(g))

    def _keys(self, g: str):
        # a steady user is in a group on both sides or on neither
        members = self.sides.old.get(g)
        return (members if members is not None else self.sides.new.get(g, _EMPTY)).keys()

    def _is_member(self, user: str, g: str) -> bool:
        # a steady user's member lines are the same on both sides
        return user in self.sides.old.get(g, _EMPTY) or user in self.sides.new.get(g, _EMPTY)

    def _contact(self, contact: str) -> None:
        old_groups = {g for g in self.old.memberships.get(contact, ())}
        new_groups = {g for g in self.new.memberships.get(contact, ())}
        if contact in self.sides.by_order:
            self._contact_by_order(contact, old_groups | new_groups)
            return
        renamed = contact in self.sides.renamed
        kept, left, joined = old_groups & new_groups, old_groups - new_groups, new_groups - old_groups
        fixed = []  # per fact: True/False for everyone, or the private groups deciding it
        for groups in (kept, left, joined):
            if groups & self.public:
                fixed.append(True)
            elif not groups:
                fixed.append(False)
            else:
                fixed.append(groups)

        def effect(facts: tuple[bool, bool, bool]) -> tuple[int, int, int, int]:
            a, b, d = facts
            before, after = a or b, a or d
            if before and after:
                return (0, 0, int(renamed), int(b or d))
            return (int(after), int(before), 0, 0)

        default = tuple(f if isinstance(f, bool) else False for f in fixed)
        base = effect(default)
        _add(self.everyone, base, 1)
        # Every user for whom exactly one fact holds gets that fact's effect:
        # credited through the fact's groups, once per user even where the
        # groups overlap.  Users for whom two facts hold (found by intersecting
        # groups of different facts) and the contact itself are corrected one
        # by one.
        lifts: dict[int, tuple[int, ...]] = {}
        for index, f in enumerate(fixed):
            if isinstance(f, bool):
                continue
            facts = list(default)
            facts[index] = True
            lifts[index] = tuple(x - y for x, y in zip(effect(tuple(facts)), base))
            if any(lifts[index]):
                self._credit_once(sorted(f, key=self._size, reverse=True), lifts[index])
        touched: set[str] = {contact}
        dependent = [(index, fixed[index]) for index in lifts]
        for i, (_, groups_i) in enumerate(dependent):
            for _, groups_j in dependent[i + 1 :]:
                for gi in groups_i:
                    for gj in groups_j:
                        touched.update(self._keys(gi) & self._keys(gj))
        for user in touched:
            if user not in self.steady:
                continue
            facts = tuple(
                f if isinstance(f, bool) else any(self._is_member(user, g) for g in f) for f in fixed
            )
            true = (0, 0, 0, 0) if user == contact else effect(facts)
            counted = list(base)
            for index, lift in lifts.items():
                if facts[index]:
                    _add(counted, lift, 1)
            if list(true) != counted:
                acc = self.per_user.setdefault(user, [0, 0, 0, 0])
                _add(acc, true, 1)
                _add(acc, counted, -1)

    def _credit_once(self, groups: list[str], lift: Sequence[int]) -> None:
        """Add ``lift`` once to every steady user in any of ``groups`` (largest
        first): through the group where it is cheap, user by user for the
        smaller of "already credited" and "not yet credited" members."""
        covered = []
        for g in groups:
            keys = self._keys(g)
            inside: set[str] = set()
            for other in covered:
                inside |= keys & other
            if not inside:
                _add(self.per_group.setdefault(g, [0, 0, 0, 0]), lift, 1)
            elif 2 * len(inside) <= len(keys):
                _add(self.per_group.setdefault(g, [0, 0, 0, 0]), lift, 1)
                for user in inside:
                    if user in self.steady:
                        _add(self.per_user.setdefault(user, [0, 0, 0, 0]), lift, -1)
            else:
                for user in keys:
                    if user not in inside and user in self.steady:
                        _add(self.per_user.setdefault(user, [0, 0, 0, 0]), lift, 1)
            covered.append(keys)

    def _contact_by_order(self, contact: str, groups: set[str]) -> None:
        """A contact named differently by different groups: its name depends on
        which group each user has applied last, so follow the rules exactly."""
        public = list(self.old.public)
        base = [0, 0, 0, 0]
        _classify(_state(self.sides.old, public, contact), _state(self.sides.new, public, contact), base, 1)
        _add(self.everyone, base, 1)
        touched = {u for g in groups if g not in self.public for u in self._members(g)}
        if contact in self.steady:
            touched.add(contact)
        for user in touched:
            applied = [*self.old.memberships.get(user, ()), *public]
            acc = self.per_user.setdefault(user, [0, 0, 0, 0])
            if user != contact:
                _classify(_state(self.sides.old, applied, contact), _state(self.sides.new, applied, contact), acc, 1)
            _add(acc, base, -1)


def _add(acc: list[int], values: Sequence[int], sign: int) -> None:
    for i in range(4):
        acc[i] += sign * values[i]


class _Moving:
    """Impact on one user whose own groups changed (or on everyone, when the
    public groups changed), counted with set arithmetic instead of contact by
    contact: with ``U`` the contacts a side's applied groups hold,
    gained = U_new - U_old and lost = U_old - U_new, both found among the
    members of joined or left groups and those added to or removed from the
    common ones; regrouped = the rest of those candidates.  Renames are
    counted among the few contacts whose name changed."""

    def __init__(self, sides: _Sides, old: GroupsFile, new: GroupsFile) -> None:
        self.sides = sides
        self.public_old, self.public_new = list(old.public), list(new.public)
        self._outside_cache: dict[tuple[str, ...], frozenset[str]] = {}
        self._beyond_cache: dict[tuple[object, object], frozenset[str]] = {}

    def _outside(self, key: str, items: Collection[str], groups: list[Mapping[str, str]],
                 names: list[str]) -> tuple[object, Collection[str]]:
        """The items in none of ``groups``, filtering by the largest group
        first, as a collection that answers ``in`` quickly (never a copy of
        a large member list), with a key naming it when it is shared (None
        when it is this user's own).  Filtering by large groups is cached
        under ``key`` (which names the items and the side of ``groups``) and
        the groups so far: many users share their largest groups."""
        order = sorted(range(len(groups)), key=lambda i: len(groups[i]), reverse=True)
        rest: Collection[str] = items
        prefix: tuple[str, ...] = (key,)
        for i in order:
            group = groups[i]
            if prefix and len(group) >= _SHARED_GROUP:
                prefix = (*prefix, names[i])
                hit = self._outside_cache.get(prefix)
                if hit is None:
                    hit = self._outside_cache[prefix] = frozenset(filterfalse(group.__contains__, rest))
                rest = hit
            else:
                prefix = ()
                rest = set(filterfalse(group.__contains__, rest))  # C-level: rest can be 100,000 long
            if not rest:
                break
        return (prefix or None), rest

    def _union_size(self, parts: list[tuple[object, Collection[str]]], leave_out: str | None) -> int:
        """Size of the union of ``parts`` without ``leave_out``.  The largest
        part is never copied; what the others add to it is cached for shared
        parts (a division's members beyond all-staff: none, every time)."""
        parts = [kp for kp in parts if kp[1]]
        if not parts:
            return 0
        parts.sort(key=lambda kp: len(kp[1]), reverse=True)
        largest_key, largest = parts[0]
        extra: set[str] = set()
        for key, part in parts[1:]:
            if key is not None and largest_key is not None:
                cache_key = (key, largest_key)
                beyond = self._beyond_cache.get(cache_key)
                if beyond is None:
                    beyond = self._beyond_cache[cache_key] = frozenset(filterfalse(largest.__contains__, part))
            else:
                beyond = list(filterfalse(largest.__contains__, part))
            extra.update(beyond)
        return len(largest) + len(extra) - (leave_out is not None and (leave_out in largest or leave_out in extra))

    def counts(self, user: str | None, own_old: Sequence[str], own_new: Sequence[str]) -> list[int]:
        sides = self.sides
        applied_old = [*own_old, *self.public_old]
        applied_new = [*own_new, *self.public_new]
        set_old, set_new = set(applied_old), set(applied_new)
        names_old = [g for g in set_old if g in sides.old]
        names_new = [g for g in set_new if g in sides.new]
        groups_old = [sides.old[g] for g in names_old]
        groups_new = [sides.new[g] for g in names_new]
        common = set_old & set_new
        # parts: (cache key, members)
        gain_parts = [("+" + g, sides.new[g].keys()) for g in set_new - common if g in sides.new]
        gain_parts += [("+=" + g, sides.added[g]) for g in common if g in sides.added]
        lose_parts = [("-" + g, sides.old[g].keys()) for g in set_old - common if g in sides.old]
        lose_parts += [("-=" + g, sides.removed[g]) for g in common if g in sides.removed]
        # only sizes are needed: a first run, where every user gains an
        # all-staff group of 100,000, must not copy it per user
        if not groups_old and not lose_parts:  # nothing before (a first run): every candidate is gained
            gained, lost = self._union_size(gain_parts, user), 0
            candidates = gained
        elif not groups_new and not gain_parts:  # nothing after: every candidate is lost
            gained, lost = 0, self._union_size(lose_parts, user)
            candidates = lost
        else:
            gained = self._union_size([self._outside(k, p, groups_old, names_old) for k, p in gain_parts], user)
            lost = self._union_size([self._outside(k, p, groups_new, names_new) for k, p in lose_parts], user)
            candidates = self._union_size(gain_parts + lose_parts, user)
        regrouped = candidates - gained - lost
        renamed = 0
        if sides.renamed:
            gone = {*self._outside("renamed-before", sides.renamed, groups_old, names_old)[1],
                    *self._outside("renamed-after", sides.renamed, groups_new, names_new)[1]}
            renamed = len(sides.renamed) - len(gone) - (user in sides.renamed and user not in gone)
        for c in sides.by_order:
            if c != user:
                before, after = _state(sides.old, applied_old, c), _state(sides.new, applied_new, c)
                if before is not None and after is not None and before[0] != after[0]:
                    renamed += 1
        return [gained, lost, renamed, regrouped]


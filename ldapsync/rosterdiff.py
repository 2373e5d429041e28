"""Every user's roster change between two groups files, exactly.

It follows :mod:`ldapsync.roster` rule for rule (the test suite holds it
equal to building every roster on both sides) in time that grows with the
users who can see a change and the changes, never with the square of a
group: with an all-staff group of n members, building each roster would
mean n * n entries.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from itertools import compress, filterfalse
from operator import attrgetter
from typing import NamedTuple, overload

from pyroaring import BitMap

from ldapsync.groupsfile import GroupsFile, lines_differing
from ldapsync.output import plural

_EMPTY: Mapping[str, str] = {}


class RosterChange(NamedTuple):
    """How one user's roster changes.  ``user`` is None for "every user of the
    host who is in no group" (they get only the public groups).  A named
    tuple: a diff makes one for every user of the file, and a named tuple is
    much cheaper to build than a frozen dataclass."""

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


_Counts = tuple[int, int, int, int]  # gained, lost, renamed, regrouped


class RosterChanges(Sequence[RosterChange]):
    """Every user's roster change, in JID order.  Users who see the very
    same change share one record until they are asked for one by one:
    when a change reaches every user (someone renamed in a public group),
    a run of ``serve`` needs only the totals, and a record per user would
    cost more than the rest of the diff."""

    def __init__(self, single: Iterable[RosterChange] = (),
                 alike: Iterable[tuple[RosterChange, Collection[str]]] = ()) -> None:
        self._single = list(single)
        self._alike = [(change, users) for change, users in alike if users]  # change.user is None
        self._len = len(self._single) + sum(len(users) for _, users in self._alike)
        self._listed: list[RosterChange] | None = None

    def totals(self) -> _Counts:
        """Contacts gained, lost, renamed and regrouped over every user."""
        single = self._single
        sums = [sum(map(attrgetter(field), single)) for field in ("gained", "lost", "renamed", "regrouped")]
        for c, users in self._alike:
            for i, count in enumerate((c.gained, c.lost, c.renamed, c.regrouped)):
                sums[i] += count * len(users)
        return sums[0], sums[1], sums[2], sums[3]

    def _every(self) -> list[RosterChange]:
        if self._listed is None:
            every = list(self._single)
            for c, users in self._alike:
                every += [RosterChange(user, c.gained, c.lost, c.renamed, c.regrouped, c.joined, c.left)
                          for user in users]
            every.sort(key=attrgetter("user"))  # a user each, never None
            self._listed = self._single = every  # held once: the shared records are let go
            self._alike = []
        return self._listed

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> RosterChange: ...

    @overload
    def __getitem__(self, index: slice) -> list[RosterChange]: ...

    def __getitem__(self, index: int | slice) -> RosterChange | list[RosterChange]:
        return self._every()[index]

    def __iter__(self) -> Iterator[RosterChange]:
        return iter(self._every())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RosterChanges | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RosterChanges({list(self)!r})"


# How it is counted
# -----------------
#
# A user's roster holds U, the members of the groups applied to them (their
# own, then the public ones), less themself.  Only the users in a group that
# differs (everyone when a public one does) are looked at: no other roster
# can differ.  Every JID met is interned to a dense integer and every group
# looked at becomes a compressed bitmap of its members (pyroaring), so each
# step costs what the bitmaps hold.  For one user, with A the applied groups
# of a side:
#
#   candidates = members of the groups joined or left, and members added to
#                or removed from the groups kept: exactly the contacts whose
#                presence or groups differ
#   gained     = candidates added and not in U_old       lost = the reverse
#   regrouped  = candidates - gained - lost
#   renamed    = contacts in U_old and U_new whose name differs.  A contact
#                with one name on each side (every file ldapsync writes) is
#                renamed when that name changed; one that different groups
#                name differently ("by order") takes its name from the last
#                applied group holding it, so those contacts are split by
#                that group and compared once per pair of groups.
#
# Big groups (public ones and those of _BIG members or more: all-staff,
# divisions) are shared by many users, so what they contribute is worked out
# once per combination of them (``_Shared``); each user then adds only what
# their small groups change, and corrects for being their own contact.
# Users who see the same change share one record (``RosterChanges``): when a
# change reaches everyone, those who keep their groups and hold no small
# group the change stirs are sorted by their big groups with bitmap
# operations (``_by_big_groups``), and only those in the count correct it.


class _Side:
    """One file's groups as bitmaps over the shared JID ids."""

    def __init__(self, gf: GroupsFile) -> None:
        self.file = gf
        self.groups = gf.groups
        self.public = frozenset(gf.public)
        self.members: dict[str, BitMap] = {}

    def applied(self, own: Sequence[str]) -> frozenset[str]:
        return self.public.union(own)

    def order(self, own: Sequence[str]) -> list[str]:
        """The applied groups, the one applied last first, each once."""
        seen: set[str] = set()
        out = []
        for g in reversed([*own, *self.file.public]):
            if g not in seen:
                seen.add(g)
                out.append(g)
        return out


_NONE = BitMap()
_BIG = 1000  # members: a group this large is treated as shared by many users (only a matter of speed)


class _Shared(NamedTuple):
    """What the big groups applied on each side give every user who has
    exactly these big groups: the contacts gained and lost through them
    (not yet checked against the user's small groups), every contact
    whose presence or groups may differ through them, everyone in them on
    each side, and the renamed contacts among those."""

    came: BitMap
    went: BitMap
    candidates: BitMap
    reach_old: BitMap
    reach_new: BitMap
    renamed_old: BitMap
    renamed_new: BitMap


def _covered(items: BitMap, groups: Iterable[str], members: Mapping[str, BitMap]) -> int:
    """How many of ``items`` one of ``groups`` holds.  Counted first without
    building a bitmap: most groups hold none of them, and a single group's
    count needs no union."""
    meeting = [(g, n) for g in groups if (n := items.intersection_cardinality(members[g]))]
    if not meeting:
        return 0
    if len(meeting) == 1:
        return meeting[0][1]
    return len(items & _union([members[g] for g, _ in meeting]))


def _beyond(items: BitMap, reached: list[BitMap]) -> int:
    """How many of ``items`` are in none of the bitmaps ``reached``."""
    if len(reached) == 1:
        return items.difference_cardinality(reached[0])
    return len(items.difference(*reached)) if reached else len(items)


def _union(parts: list[BitMap]) -> BitMap:
    if not parts:
        return _NONE
    if len(parts) > 8:  # one pass over them all
        return BitMap.union(*parts)
    out = parts[0]
    for part in parts[1:]:  # for a few, pairwise is faster: BitMap.union has a fixed cost per call
        out = out | part
    return out


class Interned:
    """Dense integer ids for JIDs, given as a bitmap first needs them (where
    few groups changed, only the JIDs of the groups looked at get one), and
    each group's members as a bitmap, by the very mapping they come from.

    A diff makes its own; serve's poll process keeps one from a diff to the
    next (in :class:`ldapsync.warm.OutputMemo`): the next file is read as
    an update of the last, which shares the groups that did not change, so
    the next diff finds their bitmaps made.  Group mappings are never
    changed in place, nor are the bitmaps."""

    def __init__(self) -> None:
        self.of: dict[str, int] = {}
        self.jids: list[str] = []  # id -> JID
        self._groups: dict[int, tuple[Mapping[str, str], BitMap]] = {}  # id(members) -> them, their bitmap
        self._lines: dict[tuple[int, int], tuple[Mapping[str, str | None], Mapping[str, str | None], list[str]]] = {}

    def bitmap(self, jids: Collection[str]) -> BitMap:
        """``jids`` (distinct) as a bitmap of their ids."""
        self._number(jids)
        return BitMap(map(self.of.__getitem__, jids))

    def _number(self, jids: Iterable[str]) -> None:
        of = self.of
        fresh = list(filterfalse(of.__contains__, jids))
        if fresh:
            of.update(zip(fresh, range(len(self.jids), len(self.jids) + len(fresh)), strict=True))
            self.jids += fresh

    def prime(self, gf: GroupsFile) -> None:
        """Make, when nothing is made yet, what a diff from ``gf`` asks for
        first whatever changed: every member's id, and the bitmaps of the
        public and big groups.  serve's poll process calls it once a run
        has written ``gf``, so that the first poll that finds a change does
        not make them."""
        if self.of:
            return
        self._number(gf.memberships)
        public = frozenset(gf.public)
        for name, members in gf.groups.items():
            if name in public or len(members) >= _BIG:
                self.members(members)

    def members(self, group: Mapping[str, str]) -> BitMap:
        """A group's members as a bitmap, made once per mapping."""
        kept = self._groups.get(id(group))
        if kept is not None and kept[0] is group:
            return kept[1]
        made = self.bitmap(group)
        self._groups[id(group)] = (group, made)
        return made

    def same_members(self, group: Mapping[str, str], bitmap: BitMap) -> BitMap:
        """``bitmap``, the members of another group with the same JIDs as
        ``group`` (only names changed), kept as ``group``'s."""
        self._groups[id(group)] = (group, bitmap)
        return bitmap

    def lines_differing(self, old: Mapping[str, str | None], new: Mapping[str, str | None]) -> list[str]:
        """:func:`groupsfile.lines_differing`, worked out once per pair of
        group mappings: the file's render, the group diff and the roster
        diff of a poll each ask it of the same groups."""
        key = (id(old), id(new))
        kept = self._lines.get(key)
        if kept is not None and kept[0] is old and kept[1] is new:
            return kept[2]
        found = lines_differing(old, new)
        self._lines[key] = (old, new, found)
        return found

    def keep_only(self, gf: GroupsFile) -> None:
        """Let go of the bitmaps of the groups ``gf`` does not hold (the
        next diff's old file holds what is worth keeping), and of the lines
        compared."""
        live = {id(m): m for m in gf.groups.values()}
        self._groups = {k: kept for k, kept in self._groups.items() if live.get(k) is kept[0]}
        self._lines = {}


class _Bitmaps(dict[str, BitMap]):
    """Each group's members as a bitmap, made when first asked for: where few
    groups changed, most users' views need none of their small groups'.  A
    group the same in both files (``unchanged_in`` the other side) shares
    that side's bitmap."""

    def __init__(self, groups: Mapping[str, Mapping[str, str]], members: Callable[[Mapping[str, str]], BitMap],
                 unchanged_in: _Bitmaps | None = None) -> None:
        super().__init__()
        self.groups, self.members, self.other = groups, members, unchanged_in

    def __missing__(self, group: str) -> BitMap:
        if self.other is not None:  # the new side asks for a group it did not set: one unchanged
            made = self[group] = self.other[group]
        else:
            made = self[group] = self.members(self.groups.get(group, _EMPTY))
        return made


class _Rosters:
    """Both files as bitmaps, and what changed inside each group, worked out once."""

    def __init__(self, old: GroupsFile, new: GroupsFile, interned: Interned | None = None) -> None:
        interned = interned or Interned()
        self.jids, self.ids, self.intern = interned.jids, interned.of, interned.bitmap
        self.old, self.new = _Side(old), _Side(new)
        intern = interned.bitmap
        # what changed in each group: members added and removed, as bitmaps
        self.added: dict[str, BitMap] = {}
        self.removed: dict[str, BitMap] = {}
        touched: set[str] = set()  # contacts whose line changed somewhere: only they can be renamed
        whole: list[Mapping[str, str]] = []  # groups only one file has: their contacts may be renamed too
        self.differ: list[str] = []  # groups whose members or names differ
        by_order = old.several_names | new.several_names
        names = old.groups.keys() | new.groups.keys()
        self.old.members = _Bitmaps(old.groups, interned.members)
        self.new.members = _Bitmaps(new.groups, interned.members, self.old.members)
        for g in names:
            a, b = old.groups.get(g, _EMPTY), new.groups.get(g, _EMPTY)
            if a is b or a == b:
                continue  # the same bitmap on both sides, made if a user's view needs it
            self.differ.append(g)
            ma = self.old.members[g]
            # names changed only: the same members
            mb = interned.same_members(b, ma) if a.keys() == b.keys() else interned.members(b)
            if ma == mb:
                mb = ma
            else:
                self.added[g], self.removed[g] = mb - ma, ma - mb
            self.new.members[g] = mb
            if a and b:  # the contacts whose line differs
                touched.update(interned.lines_differing(a, b))
                touched.update(a.keys() - b.keys())
            else:
                whole.append(a or b)
        if whole and old.memberships and new.memberships:  # of a group added or removed, only the contacts
            in_old, in_new = old.memberships.__contains__, new.memberships.__contains__  # in both files
            for m in whole:
                touched.update(filter(in_new, filter(in_old, m)))
        self.changed = frozenset(self.added)
        # contacts with one name per side whose name changed (wherever their lines are)
        renamed = []
        for c in touched - by_order:
            own_old, own_new = old.memberships.get(c), new.memberships.get(c)
            if own_old and own_new and old.groups[own_old[0]][c] != new.groups[own_new[0]][c]:
                renamed.append(c)
        self.renamed = intern(renamed)
        self.by_order = intern(by_order)
        self._pairs: dict[tuple[str, str], BitMap] = {}
        # Big groups (public ones, and those of _BIG members or more) are
        # shared by many users: what they contribute is worked out once per
        # combination of them; each user adds only their small groups.
        public = self.old.public | self.new.public
        self.small = frozenset(g for g in names if g not in public and len(old.groups.get(g, _EMPTY)) < _BIG
                               and len(new.groups.get(g, _EMPTY)) < _BIG)

    @cached_property
    def listed_otherwise(self) -> list[str]:
        """The users of the old file whose own groups are listed otherwise in
        the new one (other groups, another order, a repeated line, none).  A
        file updated from the last shares the lists of those it did not
        touch: the same list is never compared line by line."""
        own_old, own_new = self.old.file.memberships, self.new.file.memberships
        candidates = compress(own_old, map(operator.is_not, own_old.values(), map(own_new.get, own_old)))
        return [user for user in candidates if own_old[user] != own_new.get(user)]

    def quiet(self) -> tuple[frozenset[str], frozenset[str]]:
        """The small groups that change nothing to a user who keeps their own
        groups; and those that change nothing to such a user who is in no
        small group whose members changed.

        The first hold no contact whose presence, groups or name may differ
        for someone: none added to or removed from a group, in a group public
        on one side only, renamed, or named by order.  A renamed contact
        whom a public group holds on both sides is renamed for every user,
        whatever else holds them, and stirs no group.  The second may hold
        contacts added to or removed from small groups: only the members of
        those groups see it."""
        nothing: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
        if self.small <= self.changed:  # every small group changed (the first run: every group is new)
            return nothing
        flipped = self.old.public ^ self.new.public
        renamed = self.renamed
        if renamed and self.old.public and self.new.public:
            everywhere = (_union([self.old.members[g] for g in self.old.public])
                          & _union([self.new.members[g] for g in self.new.public]))
            renamed = renamed - everywhere
        big_moves = [m for moved in (self.added, self.removed) for g, m in moved.items() if g not in self.small]
        small_moves = [m for moved in (self.added, self.removed) for g, m in moved.items() if g in self.small]
        # a group that differs only in names is loud through its renamed contacts
        loud = self._holding(_union([*big_moves, renamed, self.by_order, *[self.old.members[g] for g in flipped],
                                     *[self.new.members[g] for g in flipped]]))
        loud.update(self.changed)
        to_others = self.small.difference(loud)
        if not to_others:
            return nothing
        return to_others.difference(self._holding(_union(small_moves))), to_others

    def _holding(self, contacts: BitMap) -> set[str]:
        """The groups that list one of ``contacts`` on either side."""
        own_old, own_new = self.old.file.memberships, self.new.file.memberships
        groups: set[str] = set()
        for jid in map(self.jids.__getitem__, contacts):
            groups.update(own_old.get(jid, ()))
            groups.update(own_new.get(jid, ()))
        return groups

    def shared(self, big_old: frozenset[str], big_new: frozenset[str]) -> _Shared:
        """What the big groups applied on each side give every user who has
        exactly these big groups (see :class:`_Shared`)."""
        old, new = self.old.members, self.new.members
        came, went = self._moved(big_old, big_new)
        reach_old = _union([old[g] for g in big_old])
        reach_new = _union([new[g] for g in big_new])
        return _Shared(came - reach_old if reach_old else came, went - reach_new if reach_new else went,
                       came | went, reach_old, reach_new,
                       self.renamed & reach_old, self.renamed & reach_new)

    def _moved(self, applied_old: frozenset[str], applied_new: frozenset[str]) -> tuple[BitMap, BitMap]:
        """The members of the groups joined, and those added to the groups
        kept; the members of the groups left, and those removed from the
        groups kept: every contact whose presence or groups may differ."""
        kept = applied_old & applied_new
        moving = kept & self.changed
        plus = [self.new.members[g] for g in applied_new - kept] + [self.added[g] for g in moving]
        minus = [self.old.members[g] for g in applied_old - kept] + [self.removed[g] for g in moving]
        return _union(plus), _union(minus)

    def view(self, big: _Shared, own_old: Sequence[str], own_new: Sequence[str], small_old: frozenset[str],
             small_new: frozenset[str]) -> tuple[list[int], list[BitMap]]:
        """Gained, lost, renamed and regrouped contacts of every user whose own
        groups are ``own_old`` and ``own_new`` (their big ones giving
        ``big``, their small ones ``small_old`` and ``small_new``),
        counting the user among their own contacts; and bitmaps that hold
        every contact counted, in which a user looks themself up (each
        user's correction)."""
        # Counted without copying the big groups' sets: what the small groups
        # add is kept apart from them (disjoint), and each part is checked
        # against the small groups applied.
        came, went, candidates = big.came, big.went, big.candidates
        counts = [len(came), len(went), 0, len(candidates)]
        counted = [candidates]
        if small_old or small_new:
            old, new = self.old.members, self.new.members
            # what the big groups' changes meet in the small groups is shared
            if came:
                counts[_GAINED] -= _covered(came, small_old, old)
            if went:
                counts[_LOST] -= _covered(went, small_new, new)
            if small_old == small_new:  # the common case: a user keeps their groups
                moving = small_old & self.changed
                plus = _union([self.added[g] for g in moving]) if moving else _NONE
                minus = _union([self.removed[g] for g in moving]) if moving else _NONE
            else:
                plus, minus = self._moved(small_old, small_new)
            if plus:
                counts[_GAINED] += _beyond(plus, [came, big.reach_old, *[old[g] for g in small_old]])
            if minus:
                counts[_LOST] += _beyond(minus, [went, big.reach_new, *[new[g] for g in small_new]])
            if plus or minus:
                extra = (plus | minus) if plus and minus else (plus or minus)
                counted.append(extra)
                counts[_REGROUPED] += extra.difference_cardinality(candidates)
        counts[_REGROUPED] -= counts[_GAINED] + counts[_LOST]
        if self.renamed:
            # the renamed contacts each side reaches: those of the big groups,
            # and those of the rest that a small group holds (often none left)
            both = (self._renamed_in(big.renamed_old, small_old, self.old.members)
                    & self._renamed_in(big.renamed_new, small_new, self.new.members))
            if both:
                counts[_RENAMED] += len(both)
                counted.append(both)
        if self.by_order:
            both = _union([self.by_order & self.old.members[g] for g in self.old.applied(own_old)])
            if both:
                both = _union([both & self.new.members[g] for g in self.new.applied(own_new)])
            if both:
                both = self._renamed_by_order(both, self.old.order(own_old), self.new.order(own_new))
            if both:
                counts[_RENAMED] += len(both)
                counted.append(both)
        return counts, counted

    def _renamed_in(self, by_big: BitMap, small: frozenset[str], members: Mapping[str, BitMap]) -> BitMap:
        """The renamed contacts that the big groups (``by_big`` of them) and
        the ``small`` groups reach: the renamed are few, so they are met
        with each small group rather than the small groups joined."""
        rest = self.renamed - by_big if by_big else self.renamed
        if not rest or not small:
            return by_big
        return _union([by_big, *[hit for g in small if (hit := rest & members[g])]])

    def _renamed_by_order(self, contacts: BitMap, order_old: list[str], order_new: list[str]) -> BitMap:
        """Of ``contacts`` (named by order, present on both sides), those whose
        name differs: each takes its name from the last applied group that
        holds it, so they are split by that group on each side."""
        parts_old = self._split(contacts, order_old, self.old)
        parts_new = self._split(contacts, order_new, self.new)
        out: list[BitMap] = []
        for g, part_old in parts_old:
            for h, part_new in parts_new:
                common = part_old & part_new
                if common:
                    differ = common & self._differ(g, h)
                    if differ:
                        out.append(differ)
        return _union(out)

    @staticmethod
    def _split(contacts: BitMap, order: list[str], side: _Side) -> list[tuple[str, BitMap]]:
        parts, rest = [], contacts
        for g in order:
            if not rest:
                break
            part = rest & side.members[g]
            if part:
                parts.append((g, part))
                rest = rest - part
        return parts

    def _differ(self, g: str, h: str) -> BitMap:
        """The contacts named by order whose name in old group ``g`` differs
        from their name in new group ``h`` (worked out once per pair)."""
        found = self._pairs.get((g, h))
        if found is None:
            a, b = self.old.groups[g], self.new.groups[h]
            both = self.by_order & self.old.members[g] & self.new.members[h]
            jids = self.jids
            found = self._pairs[(g, h)] = BitMap(i for i in both if a[jids[i]] != b[jids[i]])
        return found


def roster_changes(old: GroupsFile, new: GroupsFile,
                   interned: Interned | None = None) -> tuple[RosterChanges, RosterChange | None]:
    """Per-user roster impact of going from ``old`` to ``new``: every user in
    either file whose roster changes, by JID, and every other user of the
    host (None when neither file has a public group).  ``interned``: what
    the last diff of a run of this process left (see :class:`Interned`)."""
    rosters = _Rosters(old, new, interned)
    return _roster_changes(rosters, old, new, _who_may_see_a_change(rosters, old, new))


def _everyone(old: GroupsFile, new: GroupsFile) -> list[str]:
    """Every user in either file, each once."""
    users = list(old.memberships)
    users += filterfalse(old.memberships.__contains__, new.memberships)
    return users




def _who_may_see_a_change(rosters: _Rosters, old: GroupsFile, new: GroupsFile) -> Collection[str]:
    """The users whose roster may differ, so that a diff of a few groups
    costs what they hold.  A roster is made of the user's own groups, in
    the order of their member lines, then the public groups: it can differ
    only if one of those groups differs or the list of them does.  So:
    everyone when a public group or the list of public groups differs;
    else the members, on either side, of the groups that differ, and the
    users whose own groups are listed otherwise (in another order, or a
    repeated line) though they are the same groups."""
    if list(old.public) != list(new.public) or not rosters.old.public.isdisjoint(rosters.differ):
        return _everyone(old, new)
    users: set[str] = set()
    for g in rosters.differ:
        users.update(old.groups.get(g, _EMPTY))
        users.update(new.groups.get(g, _EMPTY))
    users.update(rosters.listed_otherwise)
    return users


def _roster_changes(rosters: _Rosters, old: GroupsFile, new: GroupsFile, users: Collection[str],
                    leave_quiet_out: bool = True) -> tuple[RosterChanges, RosterChange | None]:
    """:func:`roster_changes` among ``users`` (each once); over
    :func:`_everyone`, without leaving quiet groups out (see
    :func:`_views`), the plain computation."""
    empty: tuple[str, ...] = ()
    small = rosters.small
    single: list[RosterChange] = []
    alike: list[tuple[RosterChange, Collection[str]]] = []
    public_old, public_new = rosters.old.public, rosters.new.public
    for (big_old, big_new), views in _views(rosters, old, new, users, leave_quiet_out).items():
        shared = rosters.shared(public_old.union(big_old), public_new.union(big_new))
        for (own_old, own_new, on_old, on_new), members in views.items():
            small_old, small_new = small.intersection(own_old), small.intersection(own_new)
            counts, counted = rosters.view(shared, own_old, own_new, small_old, small_new)
            if own_old == own_new:
                joined = left = empty
            else:
                joined = tuple(sorted(set(own_new) - set(own_old)))
                left = tuple(sorted(set(own_old) - set(own_new)))
            if not any(counts) and not joined and not left:
                continue  # nobody with this view sees a change (themself included: not counted)
            # A user is in their own member lines' groups, so on a side where
            # they have any they are among the contacts counted; they are not
            # their own contact.
            among = _among_counted(rosters, members, counted)
            for user in among:
                mine = list(counts)
                if on_old and on_new:
                    _uncount_present(rosters, user, mine)
                else:
                    mine[_GAINED if on_new else _LOST] -= 1
                if any(mine) or joined or left:
                    single.append(RosterChange(user, mine[0], mine[1], mine[2], mine[3], joined, left))
            if any(counts) or joined or left:
                rest = [u for u in members if u not in among] if among else members
                alike.append((RosterChange(None, counts[0], counts[1], counts[2], counts[3], joined, left), rest))
    others = None
    if old.public or new.public:
        nothing: frozenset[str] = frozenset()
        gained, lost, renamed, regrouped = rosters.view(rosters.shared(public_old, public_new), empty, empty,
                                                        nothing, nothing)[0]
        others = RosterChange(None, gained, lost, renamed, regrouped)
    return RosterChanges(single, alike), others


def _among_counted(rosters: _Rosters, members: list[str], counted: list[BitMap]) -> set[str]:
    """The ``members`` that one of the ``counted`` bitmaps holds: looked up
    one by one, or, when the bitmaps hold fewer contacts than there are
    members (a few contacts renamed, seen by everyone), the other way."""
    if sum(map(len, counted)) < len(members):
        jids = rosters.jids
        return {jids[i] for bitmap in counted for i in bitmap}.intersection(members)
    ids = rosters.ids
    found = set()
    for user in members:
        uid = ids.get(user)
        if uid is not None:  # a user without an id is in no bitmap
            for bitmap in counted:
                if uid in bitmap:
                    found.add(user)
                    break
    return found


_Pair = tuple[tuple[str, ...], tuple[str, ...]]  # groups of the old side, of the new side
_View = tuple[tuple[str, ...], tuple[str, ...], bool, bool]  # the groups that matter; in any group on each side


def _views(rosters: _Rosters, old: GroupsFile, new: GroupsFile, users: Collection[str],
           leave_quiet_out: bool) -> dict[_Pair, dict[_View, list[str]]]:
    """``users`` by their big groups on each side, then by their own groups
    on each side and whether they have any: users with the same see the
    same changes.  Of a user who keeps their own groups, the quiet ones
    (see :meth:`_Rosters.quiet`) can be left out, so that when a change
    reaches everyone (someone renamed in a public group) those who differ
    only in quiet groups share a view.

    When no contact is named by order, the order of a user's groups does
    not matter, and the users who keep their groups and hold no group but
    quiet and big ones are sorted out by set operations
    (:func:`_by_big_groups`) rather than one by one."""
    empty: tuple[str, ...] = ()
    by_big: dict[_Pair, dict[_View, list[str]]] = {}
    small = rosters.small
    quiet, quiet_to_others = rosters.quiet() if leave_quiet_out else (frozenset(), frozenset())
    if quiet_to_others and not rosters.by_order:
        users, rest = _alone_with_quiet_groups(rosters, old, new, users, quiet_to_others)
        for own, cell in _by_big_groups(rosters, old, rest):
            by_big.setdefault((own, own), {})[(own, own, True, True)] = cell
    # a user who keeps their groups: their own groups that matter and the big ones among them, by the
    # groups listed (thousands of users share each list)
    kept: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
    old_own, new_own = old.memberships, new.memberships
    for user in users:
        listed_old, listed_new = old_own.get(user, empty), new_own.get(user, empty)
        if listed_old == listed_new:
            listed = tuple(listed_old)
            known = kept.get(listed)
            if known is None:
                own = tuple([g for g in listed if g not in quiet] if quiet else listed)
                known = kept[listed] = (own, tuple([g for g in own if g not in small]))
            own_old = own_new = known[0]
            big = (known[1], known[1])
        else:
            own_old, own_new = tuple(listed_old), tuple(listed_new)
            big = (tuple([g for g in own_old if g not in small]), tuple([g for g in own_new if g not in small]))
        views = by_big.get(big)
        if views is None:
            views = by_big[big] = {}
        key = (own_old, own_new, bool(listed_old), bool(listed_new))
        alike = views.get(key)
        if alike is None:
            views[key] = [user]
        else:
            alike.append(user)
    return by_big


def _alone_with_quiet_groups(rosters: _Rosters, old: GroupsFile, new: GroupsFile, users: Collection[str],
                             quiet_to_others: frozenset[str]) -> tuple[list[str], BitMap]:
    """``users`` split in two: those to look at one by one, and (as a bitmap)
    those who keep their groups and hold no small group but
    ``quiet_to_others`` (see :meth:`_Rosters.quiet`)."""
    one_by_one = set(rosters.listed_otherwise)
    one_by_one.update(filterfalse(old.memberships.__contains__, new.memberships))
    for g in rosters.small.difference(quiet_to_others):
        one_by_one.update(old.groups.get(g, _EMPTY))
        one_by_one.update(new.groups.get(g, _EMPTY))
    every, looked_at = rosters.intern(users), rosters.intern(one_by_one)
    return list(map(rosters.jids.__getitem__, every & looked_at)), every - looked_at


def _by_big_groups(rosters: _Rosters, old: GroupsFile, users: BitMap) -> list[tuple[tuple[str, ...], list[str]]]:
    """``users`` (who keep their groups) by the big groups they are in, as the
    sorted names of those groups; those public on both sides left out, as
    every user has them anyway.  Each big group splits every set of users in
    those it holds and the others."""
    cells: list[tuple[tuple[str, ...], BitMap]] = [((), users)] if users else []
    for g in sorted(old.groups.keys() - rosters.small - (rosters.old.public & rosters.new.public)):
        holding = rosters.old.members[g]
        split: list[tuple[tuple[str, ...], BitMap]] = []
        for names, cell in cells:
            inside = cell & holding
            if inside:
                split.append(((*names, g), inside))
                if len(inside) < len(cell):
                    split.append((names, cell - inside))
            else:
                split.append((names, cell))
        cells = split
    jid = rosters.jids.__getitem__
    return [(names, list(map(jid, cell))) for names, cell in cells]


_GAINED, _LOST, _RENAMED, _REGROUPED = range(4)


def _uncount_present(rosters: _Rosters, user: str, counts: list[int]) -> None:
    """Take out what the user, present on both sides, added to their own
    view's renamed and regrouped figures."""
    old, new = rosters.old.file, rosters.new.file
    own_old, own_new = old.memberships[user], new.memberships[user]
    groups_old = {g for g in rosters.old.applied(own_old) if user in old.groups.get(g, _EMPTY)}
    groups_new = {g for g in rosters.new.applied(own_new) if user in new.groups.get(g, _EMPTY)}
    if groups_old != groups_new:
        counts[_REGROUPED] -= 1
    name_old = next(old.groups[g][user] for g in rosters.old.order(own_old) if g in groups_old)
    name_new = next(new.groups[g][user] for g in rosters.new.order(own_new) if g in groups_new)
    if name_old != name_new:
        counts[_RENAMED] -= 1

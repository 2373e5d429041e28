"""Reading the groups file as Prosody does.

Reading follows ``plugins/mod_groups.lua`` of Prosody 0.12 line for line (the
rules are listed in docs/prosody.md); :func:`parse` also says, line by
line, where Prosody drops a line or reads it differently from how it looks
(:mod:`.diagnostics`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import compress
from pathlib import Path
from typing import Any, TypeGuard, cast

from ldapsync import jid as jidlib
from ldapsync import safeio
from ldapsync.groupsfile.diagnostics import (
    Collector,
    Diagnostic,
    check_entry,
    check_header,
    check_member,
    invalid_jid,
)
from ldapsync.invisible import describe, escaped, has_invisible, surely_visible
from ldapsync.model import GroupsModel, SharedGroup
from ldapsync.speed import without_cycle_collector

DEFAULT_GROUP = "default"

# mod_groups: line:match("^%s*%[(.-)%]%s*$")
_HEADER = re.compile(r"[ \t\n\v\f\r]*\[(.*?)\][ \t\n\v\f\r]*\Z", re.DOTALL)
# entryjid:match("%S+")
_TOKEN = re.compile(r"[^ \t\n\v\f\r]+")
_LUA_SPACE = jidlib.LUA_SPACE


def name_as_read(name: str | None) -> str:
    """A member's name as Prosody reads it back: a line without ``=Name``
    (None in a model) gives the name ``""``."""
    return name or ""


def _all_named(members: Mapping[str, str | None]) -> TypeGuard[Mapping[str, str]]:
    """Whether every member has a name (None: a nameless line)."""
    return None not in members.values()


def _as_read(members: Mapping[str, str | None]) -> Mapping[str, str]:
    """A group's members as Prosody reads them: the read-only mapping as it
    is, not a copy, unless a name is missing (``""`` in Prosody)."""
    return members if _all_named(members) else {j: name_as_read(n) for j, n in members.items()}


_NO_MEMBERS: Mapping[str, str] = {}


def lines_differing(old: Mapping[str, str | None], new: Mapping[str, str | None]) -> list[str]:
    """The JIDs whose line in group ``new`` is not in group ``old`` (added,
    or with another name), in ``new``'s order.  A group updated from the
    last file keeps its members' order, and then the names are compared
    side by side: for an all-staff group, a fraction of looking each up."""
    if len(old) == len(new) and list(old) == list(new):
        return list(compress(new, map(operator.ne, new.values(), old.values())))
    get, missing = old.get, object()
    return [j for j, n in new.items() if get(j, missing) != n]


@dataclass(frozen=True, eq=False)
class GroupsFile:
    """What mod_groups holds after loading a file.

    ``groups``: group name -> {prepared JID -> name}, in order of first
    header; a nameless line gives the name ``""`` as in Prosody.
    ``memberships``: JID -> the groups of its member lines, in file order
    (repeats kept): the order Prosody applies a user's own groups in.
    ``public``: the public groups in header order (repeats kept), applied to
    every user after their own.  Treat all three as read-only.
    """

    groups: Mapping[str, Mapping[str, str]]
    memberships: Mapping[str, Sequence[str]]
    public: Sequence[str]
    declared: frozenset[str]
    diagnostics: tuple[Diagnostic, ...] = ()
    #: JIDs that different member lines give different names: their name in a
    #: roster depends on the order Prosody applies groups in.
    several_names: frozenset[str] = frozenset()

    @classmethod
    def of_model(cls, model: GroupsModel) -> GroupsFile:
        """What Prosody holds after loading the file :func:`render` writes for
        ``model``, built without reading the text: for a caller that has the
        text verified elsewhere (see :func:`verify`) and needs the reading now."""
        return cls.of_groups((g.name, g.public, g.members) for g in model.groups)

    @classmethod
    def of_groups(cls, groups: Iterable[tuple[str, bool, Mapping[str, str | None]]]) -> GroupsFile:
        """:meth:`of_model` from (name, public, members) in file order, names
        unique: also what a file ldapsync wrote holds, as its cache gives it."""
        read: dict[str, Mapping[str, str]] = {DEFAULT_GROUP: {}}
        memberships: dict[str, list[str]] = {}
        public = []
        declared = set()
        for name, is_public, members in groups:
            read[name] = _as_read(members)
            declared.add(name)
            if is_public:
                public.append(name)
            for jid in members:
                memberships.setdefault(jid, []).append(name)
        return cls(read, memberships, public, frozenset(declared))

    def updated(self, model: GroupsModel, changed: Collection[str]) -> GroupsFile:
        """:meth:`of_model` of ``model``, from this reading of the model before
        it (:meth:`of_model` of that one, or what this method gave for it) and
        the names of the groups that differ between the two: added, removed,
        with other members or names, or made public or not (naming more is
        harmless, leaving one out is wrong).  A poll changes a few groups of
        thousands: this costs what those groups hold and a shallow copy of
        the rest, which it shares with this reading, left as it is.  The
        result equals :meth:`of_model`'s, except that the JIDs of the changed
        groups may come in another order among ``memberships``' keys (the
        lists are the same; nothing reads that order)."""
        changed = frozenset(changed)
        read: dict[str, Mapping[str, str]] = {DEFAULT_GROUP: {} if DEFAULT_GROUP in changed else
                                              self.groups[DEFAULT_GROUP]}
        public = []
        for group in model.groups:
            name = group.name
            read[name] = _as_read(group.members) if name in changed else self.groups[name]
            if group.public:
                public.append(name)
        # A JID's groups are listed in model order, that of their names.  Only
        # the groups whose JIDs changed (not only their names, as when people
        # are renamed) change lists: a JID of one of them, on either side,
        # keeps its other groups and gets those it is in now.
        moved = frozenset(name for name in changed
                          if self.groups.get(name, _NO_MEMBERS).keys() != read.get(name, _NO_MEMBERS).keys())
        joined: dict[str, list[str]] = {}
        for name in moved:
            for jid in read.get(name, _NO_MEMBERS):
                joined.setdefault(jid, []).append(name)
        touched = set(joined)
        for name in moved:
            touched.update(self.groups.get(name, _NO_MEMBERS))
        memberships = dict(self.memberships)
        for jid in touched:
            own = [g for g in self.memberships.get(jid, ()) if g not in moved]
            own += joined.get(jid, ())
            if own:
                own.sort()
                memberships[jid] = own
            else:
                del memberships[jid]
        return type(self)(read, memberships, public, frozenset(g.name for g in model.groups))

    @property
    def public_names(self) -> frozenset[str]:
        return frozenset(self.public)

    def visible_groups(self) -> dict[str, Mapping[str, str]]:
        """The groups Prosody has after reading the file, in file order: every
        group a header declared, even empty, and members given before any
        header (the default group) only when there are some.  Worked out
        once per reading (a run asks several times); treat it as read-only."""
        return self._visible

    @cached_property
    def _visible(self) -> dict[str, Mapping[str, str]]:
        return {name: members for name, members in self.groups.items() if members or name in self.declared}

    def applied_groups(self, user: str) -> list[str]:
        """The groups Prosody applies to ``user``'s roster, in order."""
        return [*self.memberships.get(user, ()), *self.public]

    def means(self, model: GroupsModel) -> bool:
        """Whether Prosody reads exactly ``model`` from this file: the same
        groups, public or not, with the same members and names.  Compares in
        place, without building a second model of a large file."""
        public = self.public_names
        if len(self.visible_groups()) != len(model.groups):
            return False
        for group in model.groups:
            members = self.groups.get(group.name)
            if members is None or (group.name in public) != group.public or len(members) != len(group.members):
                return False
            if members == group.members:
                continue  # every member named: one comparison in C
            for jid, name in group.members.items():
                if members.get(jid) != name_as_read(name):
                    return False
        return True

    def size(self) -> tuple[int, int]:
        """The groups and member lines :meth:`to_model` would hold, without building it."""
        visible = self.visible_groups()
        return len(visible), sum(map(len, visible.values()))

    def to_model(self) -> GroupsModel:
        public = self.public_names
        return GroupsModel.of(SharedGroup(name, members, name in public)
                              for name, members in self.visible_groups().items())


def read(path: str | Path) -> GroupsFile:
    """Parse the file a person named at ``path`` (a link to it will do; a
    FIFO, a device or an oversized file raises :class:`safeio.UnsafeFile`);
    bytes that are not UTF-8 are kept as surrogate escapes, which Prosody's
    JID preparation rejects as it rejects invalid UTF-8."""
    return parse(safeio.read_bytes(path, "groups file", follow=True).decode("utf-8", "surrogateescape"))


@without_cycle_collector
def parse(text: str) -> GroupsFile:
    """Read ``text`` exactly as mod_groups reads a groups file."""
    lines = text.split("\n")
    if lines[-1] == "":  # io.lines() yields no line after a final "\n"
        lines.pop()
    reader = _Reader()
    # Lines that may be headers (or are blank) are read one by one; the runs
    # of member lines between them, most of a file, in bulk where they can be.
    start, end = 0, len(lines)
    for mark in [*(i for i, line in enumerate(lines) if line[:1] in _HEADER_STARTS), end]:
        if start < mark and not reader.member_run(lines, start, mark):
            reader.lines(lines, start, mark)
        if mark < end:
            reader.lines(lines, mark, mark + 1)
        start = mark + 1
    return reader.result()


# line[:1] of a header, of a line with leading white space, and of a blank line
_HEADER_STARTS = "[" + _LUA_SPACE
_SPLIT_AT_EQUALS = operator.methodcaller("split", "=", 1)
_FIRST = operator.itemgetter(0)


class _Reader:
    """The state of mod_groups while it reads a file, and the explanations."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, str]] = {DEFAULT_GROUP: {}}
        self.memberships: dict[str, list[str]] = {}
        self.public: list[str] = []
        self.declared: set[str] = set()
        self.diags: list[Diagnostic] = []
        self.warn = Collector(self.diags)
        self.header_line: dict[str, int] = {}  # group -> line of its first header
        self.plain_header: dict[str, int] = {}  # group -> first line of a non-"+" header
        # jid -> [jid, its memberships list, first name, line of the first name]
        self.seen: dict[str, list] = {}
        # Text before "=" that is exactly a prepared JID: by far the most
        # common case, worth one dictionary lookup instead of a regex and a
        # preparation.
        self.clean: dict[str, list] = {}
        self.several_names: set[str] = set()
        self.current = DEFAULT_GROUP
        self.before_header = True

    def result(self) -> GroupsFile:
        return GroupsFile(self.groups, self.memberships, self.public, frozenset(self.declared), tuple(self.diags),
                          frozenset(self.several_names))

    def member_run(self, lines: list[str], start: int, stop: int) -> bool:
        """Read ``lines[start:stop]`` at once if they are what a clean file
        holds: ``jid=Name`` lines of prepared JIDs, each JID once, names
        printable and trimmed, the same name as any earlier line of that
        JID, under a header that had no members yet.  Changes nothing and
        returns False otherwise: then only :meth:`lines` says exactly how
        Prosody reads them."""
        members = self.groups[self.current]
        if self.before_header or members:
            return False
        try:
            run = dict(map(_SPLIT_AT_EQUALS, lines[start:stop]))
        except ValueError:  # a line without "="
            return False
        if len(run) != stop - start:
            return False
        names = list(run.values())
        text = "\n".join(names)  # printable names hold no line break
        joined = "".join(names)
        if not (all(names) and joined.isprintable() and surely_visible(joined)) or (
                text[:1] == " " or text[-1:] == " " or "\n " in text or " \n" in text):
            return False
        knowns = list(map(self.clean.get, run))  # one lookup a line: a large file's dictionaries miss the cache
        has_new = None in knowns
        if has_new:
            new = [jid for jid, known in zip(run, knowns, strict=True) if known is None]
            joined = "".join(new)
            if any(space in joined for space in _LUA_SPACE) or not all(map(jidlib.is_prepared, new)) or (
                    not self.seen.keys().isdisjoint(new)) or not surely_visible(joined):
                return False
            firsts = [name if k is None else k[2] for k, name in zip(knowns, names, strict=True)]
        else:
            firsts = [k[2] for k in cast("list[list[Any]]", knowns)]
        if firsts != names:
            return False  # a JID named differently before
        if has_new:  # each JID once in the run: its position is its line's
            for i, jid in enumerate(run):
                if knowns[i] is None:
                    known = knowns[i] = self.seen[jid] = self.clean[jid] = [jid, [], names[i], start + 1 + i]
                    self.memberships[jid] = known[1]
        records = cast("list[list[Any]]", knowns)  # each None is filled in by now
        # one string per JID and per name, not one per line
        members.update(zip(map(_FIRST, records), firsts, strict=True))
        current = self.current
        for record in records:
            record[1].append(current)
        return True

    def lines(self, lines: list[str], start: int, stop: int) -> None:  # noqa: C901 - the reference reader: one loop, as in mod_groups
        """Read ``lines[start:stop]`` one by one, as mod_groups does."""
        groups, memberships, public, declared = self.groups, self.memberships, self.public, self.declared
        warn, header_line, plain_header = self.warn, self.header_line, self.plain_header
        seen, clean, several_names = self.seen, self.clean, self.several_names
        current, before_header = self.current, self.before_header
        current_members = groups[current]
        prep = jidlib.prep
        token_search = _TOKEN.search

        for number in range(start + 1, stop + 1):
            line = lines[number - 1]
            first = line[:1]
            if first == "[" or (first and first in _LUA_SPACE):
                header = _HEADER.match(line)
                if header is not None:
                    name = header.group(1)
                    is_public = name.startswith("+")
                    if is_public:
                        name = name[1:]
                        public.append(name)
                    check_header(warn, number, line, name, is_public, header_line, plain_header)
                    current = name
                    before_header = False
                    declared.add(name)
                    current_members = groups.setdefault(name, {})
                    continue
            eq = line.find("=")
            if eq > 0:
                entry = line[:eq]
                member_name = line[eq + 1 :]
                known = clean.get(entry)
            else:
                entry = line if eq < 0 else ""
                member_name = "" if eq < 0 else line[1:]
                known = None
            if known is None:
                token_match = token_search(entry)
                if token_match is None:
                    if eq >= 0:
                        warn(number, "error", "invalid-jid",
                             f"Prosody skips this line: no JID before '=' (name {member_name!r})")
                    continue  # a blank line
                token = token_match.group()
                jid = prep(token)
                if jid is None:
                    invalid_jid(warn, number, line, token)
                    continue
                known = seen.get(jid)
                if known is None:
                    known = seen[jid] = [jid, [], member_name, number]
                    memberships[jid] = known[1]
                    if not surely_visible(jid) and has_invisible(jid):
                        warn(number, "warning", "invisible-characters", f"the JID {escaped(jid)} holds "
                             f"{describe(jid)}: it looks like another JID")
                if jid == entry:
                    clean[entry] = known
                else:
                    check_entry(warn, number, line, entry, token_match, jid)
            jid = known[0]
            same_name = known[2] == member_name
            if same_name:
                member_name = known[2]  # one string for the name, not one per line
            size = len(current_members)
            current_members[jid] = member_name
            if len(current_members) == size:
                warn(number, "warning", "duplicate-member",
                     f"{jid} is listed in group {current!r} once more; the name on the later line wins")
            known[1].append(current)
            if not same_name:
                several_names.add(jid)
                warn(number, "warning", "name-conflict",
                     f"{jid} is named {member_name!r} here but {known[2]!r} on line {known[3]}: "
                     "a user in several groups sees the name of the group Prosody applies last")
            # Everything from here on only explains; the above is what Prosody does.
            if eq < 0 or before_header or not member_name or not member_name.isprintable() or (
                member_name[0] in _LUA_SPACE or member_name[-1] in _LUA_SPACE
            ) or not surely_visible(member_name):
                check_member(warn, number, line, jid, eq, member_name, before_header)
        self.current, self.before_header = current, before_header

"""The groups file of Prosody's mod_groups: read it as Prosody does, write it safely.

Reading follows ``plugins/mod_groups.lua`` of Prosody 0.12 line for line (the
rules are listed in docs/prosody.md); :func:`parse` also says, line by
line, where Prosody drops a line or reads it differently from how it looks.
Writing (:func:`render`) produces only text whose meaning under those rules is
exactly the intended :class:`~ldapsync.model.GroupsModel`, and proves it by
parsing the text back before returning it.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, cast

from ldapsync import jid as jidlib
from ldapsync import safeio
from ldapsync.invisible import describe, escaped, has_invisible, surely_visible, without_invisible
from ldapsync.model import GroupsModel, SharedGroup
from ldapsync.speed import without_cycle_collector

__all__ = [
    "Diagnostic",
    "GroupsFile",
    "RenderError",
    "parse",
    "read",
    "reading_problems",
    "render",
    "render_unverified",
    "sanitise",
    "unrepresentable",
    "verify",
    "xml_safe",
    "clean_text",
    "writable_jid",
]

DEFAULT_GROUP = "default"

# mod_groups: line:match("^%s*%[(.-)%]%s*$")
_HEADER = re.compile(r"[ \t\n\v\f\r]*\[(.*?)\][ \t\n\v\f\r]*\Z", re.DOTALL)
# entryjid:match("%S+")
_TOKEN = re.compile(r"[^ \t\n\v\f\r]+")
_LUA_SPACE = jidlib.LUA_SPACE
_COMMENT_MARKS = ("#", ";", "//")


def name_as_read(name: str | None) -> str:
    """A member's name as Prosody reads it back: a line without ``=Name``
    (None in a model) gives the name ``""``."""
    return name or ""


def _looks_like_comment(token: str) -> bool:
    return token.startswith(_COMMENT_MARKS) and "@" not in token


def _all_named(members: Mapping[str, str | None]) -> TypeGuard[Mapping[str, str]]:
    """Whether every member has a name (None: a nameless line)."""
    return None not in members.values()


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """A line that Prosody drops ("error") or reads differently from how it
    looks ("warning")."""

    line: int
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.severity}: {self.message} [{self.code}]"


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
            # the read-only members as they are, not a copy, unless a name is missing ("" in Prosody)
            read[name] = members if _all_named(members) else {j: name_as_read(n) for j, n in members.items()}
            declared.add(name)
            if is_public:
                public.append(name)
            for jid in members:
                memberships.setdefault(jid, []).append(name)
        return cls(read, memberships, public, frozenset(declared))

    @property
    def public_names(self) -> frozenset[str]:
        return frozenset(self.public)

    def visible_groups(self) -> dict[str, Mapping[str, str]]:
        """The groups Prosody has after reading the file, in file order: every
        group a header declared, even empty, and members given before any
        header (the default group) only when there are some."""
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
        self.warn = _Collector(self.diags)
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
                    _check_header(warn, number, line, name, is_public, header_line, plain_header)
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
                    _invalid_jid(warn, number, line, token)
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
                    _check_entry(warn, number, line, entry, token_match, jid)
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
                _check_member(warn, number, line, jid, eq, member_name, before_header)
        self.current, self.before_header = current, before_header


class _Collector:
    def __init__(self, sink: list[Diagnostic]) -> None:
        self.sink = sink

    def __call__(self, line: int, severity: Severity, code: str, message: str) -> None:
        self.sink.append(Diagnostic(line, severity, code, message))


def _check_header(warn: _Collector, number: int, line: str, name: str, is_public: bool, header_line: dict[str, int],
                  plain_header: dict[str, int]) -> None:
    shown = ("+" if is_public else "") + name
    if line.endswith("\r"):
        warn(number, "warning", "crlf", "the line ends with a carriage return (CRLF); Prosody ignores it in a header")
    if name != name.strip(_LUA_SPACE):
        warn(number, "warning", "header-spaces",
             f"the group is named {name!r} exactly as written between the brackets"
             + (" and is not public" if name.lstrip(_LUA_SPACE).startswith("+") and not is_public else ""))
    if name == "":
        warn(number, "warning", "empty-group-name", f"[{shown}] makes a group with an empty name")
    if not xml_safe(name):
        warn(number, "error", "breaks-roster", f"the group name {name!r} holds characters XML cannot carry: "
             "Prosody fails to send the roster of every user who gets this group")
    elif not _printable(name):
        warn(number, "warning", "control-char", f"the group name {name!r} holds control characters")
    if has_invisible(name):
        warn(number, "warning", "invisible-characters", f"the group name {escaped(name)} holds {describe(name)}: "
             "invisible or bidi characters hide or reorder what users see")
    if name in header_line:
        warn(number, "warning", "duplicate-header",
             f"group {name!r} already started on line {header_line[name]}; Prosody merges the sections")
    else:
        header_line[name] = number
    if is_public and name in plain_header:
        warn(number, "warning", "public-later",
             f"[+{name}] makes group {name!r} public, also the members under [{name}] on line {plain_header[name]}")
    elif not is_public:
        plain_header.setdefault(name, number)


def _invalid_jid(warn: _Collector, number: int, line: str, token: str) -> None:
    stripped = line.lstrip(_LUA_SPACE)
    if line.startswith("\ufeff"):
        hint = "; a byte-order mark (BOM) starts the line"
    elif stripped.startswith("[") and "]" in stripped:
        hint = "; text after ']' makes this a member line, not a group header"
    elif _looks_like_comment(token):
        hint = "; a groups file has no comments"
    elif any(0xDC80 <= ord(c) <= 0xDCFF for c in line):
        hint = "; the line is not valid UTF-8"
    else:
        hint = ""
    warn(number, "error", "invalid-jid", f"Prosody skips this line: {token!r} is not a valid JID{hint}")


def _check_entry(warn: _Collector, number: int, line: str, entry: str, token_match: re.Match[str], jid: str) -> None:
    """The text before '=' is not exactly a prepared JID: say how Prosody reads it."""
    token = token_match.group()
    stripped = line.lstrip(_LUA_SPACE)
    if line.startswith("\ufeff"):
        looks = "a group header" if stripped[1:].startswith("[") else "the member"
        warn(number, "warning", "bom",
             f"a byte-order mark (BOM) starts the line: Prosody reads it as the member {jid}, not as {looks}")
    elif stripped.startswith("[") and "]" in stripped:
        warn(number, "warning", "header-trailing-text",
             f"text after ']' makes Prosody read this as the member {jid}, not as a group header")
    elif _looks_like_comment(token):
        warn(number, "warning", "comment",
             f"a groups file has no comments: Prosody reads this line as the member {jid}")
    elif token != jid:
        warn(number, "warning", "unprepared-jid", f"Prosody reads {token!r} as {jid!r}")
    rest = entry[token_match.end() :].strip(_LUA_SPACE)
    if rest:
        warn(number, "warning", "extra-text",
             f"Prosody reads only the JID {token!r}; {rest!r} before the '=' is ignored")


def _check_member(warn: _Collector, number: int, line: str, jid: str, eq: int, member_name: str,
                  before_header: bool) -> None:
    """The name part of a member line, and where the line stands."""
    if before_header:
        warn(number, "warning", "default-group",
             f"a member line before any [Group] header: {jid} joins the group 'default'")
    if eq < 0:
        if line.endswith("\r"):
            warn(number, "warning", "crlf", "the line ends with a carriage return (CRLF)")
        warn(number, "warning", "nameless",
             f"{jid} has no '=Name': Prosody gives it an empty name, replacing the name users chose")
        return
    if member_name.endswith("\r"):
        warn(number, "warning", "crlf",
             "the line ends with a carriage return (CRLF): Prosody keeps it at the end of the name")
    elif member_name != member_name.strip(_LUA_SPACE):
        warn(number, "warning", "untrimmed-name", f"Prosody keeps the spaces around the name {member_name!r}")
    if not xml_safe(member_name):
        warn(number, "error", "breaks-roster", f"the name {member_name!r} holds characters XML cannot carry: "
             f"Prosody fails to send the roster of every user who gets {jid}")
    elif not _printable(member_name.rstrip("\r")):
        warn(number, "warning", "control-char", f"the name {member_name!r} holds control characters")
    if has_invisible(member_name):
        warn(number, "warning", "invisible-characters", f"the name {escaped(member_name)} of {jid} holds "
             f"{describe(member_name)}: invisible or bidi characters hide or reorder what users see")
    if member_name == "":
        warn(number, "warning", "nameless",
             f"{jid} has an empty name: Prosody replaces the name users chose with it")


# --- writing -----------------------------------------------------------------

_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


_UNWRITABLE_IN_JID = re.compile(r"[=\s\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|\A\[")


def writable_jid(jid: str) -> bool:
    """A prepared JID that reads back as itself on a member line: no '=',
    no white space or control characters, and no '[' that would start a header."""
    return _UNWRITABLE_IN_JID.search(jid) is None


# XML 1.0 "Char": what util.stanza accepts in attribute values and text.
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> bool:
    """False when Prosody's util.stanza would refuse ``text`` in a roster item
    (control characters, U+FFFE/U+FFFF, bytes that were not UTF-8): Prosody
    then fails the whole roster request of the user."""
    return _XML_UNSAFE.search(text) is None


def _printable(text: str) -> bool:
    """No control characters, line or paragraph separators, bytes that were
    not UTF-8 (surrogate escapes), or anything else XML cannot carry."""
    return text.isprintable() or (
        not any(unicodedata.category(c) in _BAD_CATEGORIES for c in text) and xml_safe(text))


class RenderError(ValueError):
    """The model holds values that a groups file cannot carry faithfully."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"cannot write the groups file: {shown}{more}")


def unrepresentable(model: GroupsModel, *, allow_nameless: bool = False) -> list[str]:
    """Every value in ``model`` that Prosody would read differently, with the
    reason, as ``group 'X': ...`` sentences; empty when the model can be written."""
    problems: list[str] = []
    names: dict[str, str | None] = {}  # JID -> its name in the first group that has it
    named_in: dict[str, str] = {}  # JID -> that group
    checked: set[tuple[str, str | None]] = set()  # (JID, name) pairs seen in an earlier group
    for group in model.groups:
        where = f"group {group.name!r}"
        if group.name == "":
            problems.append(f"{where}: a group needs a name")
        elif group.name != group.name.strip(_LUA_SPACE):
            problems.append(f"{where}: the name starts or ends with white space")
        if not _printable(group.name):
            problems.append(f"{where}: the name holds control characters")
        if has_invisible(group.name):
            problems.append(f"{where}: the name holds invisible or bidi characters ({describe(group.name)})")
        if group.name.startswith("+") and not group.public:
            problems.append(f"{where}: a private group's name cannot start with '+' ([+X] makes X public)")
        # a member is checked once, with its name, in the first group it is in: most are in several
        if group.members.items() <= names.items():
            continue  # every member checked already, with this name (one pass in C)
        fresh = group.members.items() - checked
        if not fresh:
            continue
        checked |= fresh
        new = dict(fresh)
        for jid in sorted(new.keys() & names.keys()):
            problems.append(f"{where}: member {jid} is named {new.pop(jid)!r} here but {names[jid]!r} in group "
                            f"{named_in[jid]!r}")
        names.update(new)
        named_in.update(dict.fromkeys(new, group.name))
        if not _all_writable(new):
            for jid in sorted(new):
                problems += _member_problems(where, jid, new[jid], allow_nameless)
    return problems


def _all_writable(members: dict[str, str | None]) -> bool:
    """True when every member line can be written as it is: the checks of
    :func:`_member_problems` on many members at once.  False only means
    "look at each one"."""
    if not _all_named(members) or not jidlib.all_prepared(members):
        return False
    names = list(members.values())
    jids = "@".join(members)  # '@' is no problem, and in no problem pattern
    if _UNWRITABLE_IN_JID.search(jids) is not None or "@[" in jids or not surely_visible(jids):
        return False
    text = "\n".join(names)  # printable names hold no line break
    joined = "".join(names)
    return joined.isprintable() and surely_visible(joined) and not (
        text[:1] == " " or text[-1:] == " " or "\n " in text or " \n" in text)


def _member_problems(where: str, jid: str, name: str | None, allow_nameless: bool) -> list[str]:
    problems = []
    if not jidlib.is_prepared(jid):
        prepared = jidlib.prep(jid)
        why = "is not a valid JID" if prepared is None else f"is not in prepared form (Prosody reads {prepared!r})"
        problems.append(f"{where}: member {jid!r} {why}")
    elif not writable_jid(jid):
        problems.append(f"{where}: member {jid!r} holds '=', white space or control characters, "
                        "or starts with '[' like a group header")
    elif has_invisible(jid):
        problems.append(f"{where}: member {escaped(jid)} holds invisible or bidi characters ({describe(jid)})")
    if name is None:
        if not allow_nameless:
            problems.append(f"{where}: member {jid} has no name (a nameless line wipes users' own names)")
    elif not _printable(name):
        problems.append(f"{where}: member {jid}: the name {name!r} holds control characters or line breaks")
    elif has_invisible(name):
        problems.append(f"{where}: member {jid}: the name {escaped(name)} holds invisible or bidi characters "
                        f"({describe(name)})")
    elif name != name.strip(_LUA_SPACE):
        problems.append(f"{where}: member {jid}: the name {name!r} starts or ends with white space")
    return problems


def render(model: GroupsModel, *, allow_nameless: bool = False) -> str:
    """The groups file for ``model``: groups by name, members by JID, UTF-8
    text with LF line ends and nothing else.  Raises :class:`RenderError`
    when a value cannot be written faithfully, or when the text read back as
    Prosody reads it differs from the model (a bug, never a written file)."""
    text = render_unverified(model, allow_nameless=allow_nameless)
    verify(text, model, allow_nameless=allow_nameless)
    return text


def render_unverified(model: GroupsModel, *, allow_nameless: bool = False) -> str:
    """:func:`render` without reading the text back: for a caller that
    verifies it with :func:`verify` only when it is about to be written."""
    problems = unrepresentable(model, allow_nameless=allow_nameless)
    if problems:
        raise RenderError(problems)
    return "".join(_lines(model))


def verify(text: str, model: GroupsModel, *, allow_nameless: bool = False) -> GroupsFile:
    """Read ``text`` as Prosody does and check that it means exactly
    ``model``; returns what was read.  Raises :class:`RenderError` if not."""
    back = parse(text)
    problems = reading_problems(back, model, allow_nameless=allow_nameless)
    if problems:
        raise RenderError(problems)
    return back


def reading_problems(back: GroupsFile, model: GroupsModel, *, allow_nameless: bool = False) -> list[str]:
    """Why ``back``, a file's reading, does not mean exactly ``model``; empty when it does."""
    leftovers = [d for d in back.diagnostics if not (allow_nameless and d.code == "nameless")]
    if leftovers or not back.means(model):
        detail = [str(d) for d in leftovers] or ["the text read back differs from the intended groups"]
        return ["verification failed: " + p for p in detail]
    return []


def _lines(model: GroupsModel) -> Iterable[str]:
    for group in model.groups:
        yield f"[{'+' if group.public else ''}{group.name}]\n"
        members = group.members
        jids = sorted(members)
        if jids and _all_named(members):
            yield "\n".join(map("=".join, zip(jids, map(members.__getitem__, jids), strict=True)))
            yield "\n"
        else:
            for jid in jids:
                name = members[jid]
                yield f"{jid}\n" if name is None else f"{jid}={name}\n"


def sanitise(model: GroupsModel) -> tuple[GroupsModel, list[str]]:
    """Repair what can be repaired without changing anyone's identity: names
    are cleaned as :func:`clean_text` cleans them, and a name left empty
    becomes no name.  Members whose JID cannot be written are
    dropped.  Returns the new model and one message per change; raises
    :class:`RenderError` when two group names clean to the same name."""
    messages: list[str] = []
    groups = []
    taken: dict[str, str] = {}
    for group in model.groups:
        group_name = clean_text(group.name)
        if group_name != group.name:
            messages.append(f"group {group.name!r}: name cleaned to {group_name!r}")
        if group_name in taken:
            raise RenderError([f"groups {taken[group_name]!r} and {group.name!r} both clean to {group_name!r}"])
        taken[group_name] = group.name
        members: dict[str, str | None] = {}
        for jid, name in group.members.items():
            if not jidlib.is_prepared(jid) or not writable_jid(jid) or has_invisible(jid):
                messages.append(f"group {group.name!r}: member {jid!r} dropped: the JID cannot be written")
                continue
            clean = clean_text(name) if name is not None else None
            if clean != name:
                messages.append(f"group {group.name!r}: member {jid}: name {name!r} cleaned to {clean!r}")
            members[jid] = clean or None
        groups.append(SharedGroup(group_name, members, group.public))
    return GroupsModel.of(groups), messages


# control characters, line and paragraph separators, bytes that were not
# UTF-8, and the two non-characters XML cannot carry
_BAD_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]+")


# a name that shows as blank: white space and the braille blank U+2800
_BLANK = re.compile(r"[\s\u2800]+")


def clean_text(text: str) -> str:
    """A name as a roster may show it: invisible and bidi characters go (see
    :mod:`ldapsync.invisible`), control characters and line breaks become a
    space, the ends are trimmed, and a name that would show as blank (only
    no-break spaces or braille blanks, say) becomes empty."""
    if text.isascii():
        return _BAD_RUN.sub(" ", text).strip(_LUA_SPACE)
    text = _BAD_RUN.sub(" ", without_invisible(text)).strip(_LUA_SPACE)
    return "" if _BLANK.fullmatch(text) else text

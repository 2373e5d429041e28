"""Writing the groups file safely: only text whose meaning under Prosody's
rules is exactly the intended :class:`~ldapsync.model.GroupsModel`, proved
by parsing it back (:func:`render`, :func:`verify`); values a file cannot
carry faithfully are refused (:func:`unrepresentable`) or cleaned
(:func:`sanitise`, :func:`clean_text`)."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Collection, Sequence

from ldapsync import jid as jidlib
from ldapsync.groupsfile.diagnostics import printable
from ldapsync.groupsfile.reading import GroupsFile, _all_named, parse
from ldapsync.invisible import describe, escaped, has_invisible, surely_visible, without_invisible
from ldapsync.model import GroupsModel, SharedGroup

_LUA_SPACE = jidlib.LUA_SPACE


_UNWRITABLE_IN_JID = re.compile(r"[=\s\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|\A\[")


def writable_jid(jid: str) -> bool:
    """A prepared JID that reads back as itself on a member line: no '=',
    no white space or control characters, and no '[' that would start a header."""
    return _UNWRITABLE_IN_JID.search(jid) is None


# XML 1.0 "Char": what util.stanza accepts in attribute values and text.
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
        if not printable(group.name):
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
    elif not printable(name):
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
    return "".join(render_groups(model, allow_nameless=allow_nameless))


def render_groups(model: GroupsModel, *, allow_nameless: bool = False) -> list[str]:
    """:func:`render_unverified`, one text per group, in file order: the file
    is these texts one after another."""
    problems = unrepresentable(model, allow_nameless=allow_nameless)
    if problems:
        raise RenderError(problems)
    return [group_text(group) for group in model.groups]


def text_of(model: GroupsModel) -> str:
    """The text of ``model``, unchecked: each group's header, then a line per
    member.  Only for a model :func:`unrepresentable` passed (whole, or
    line by line as :mod:`ldapsync.warm` checks it)."""
    return "".join(map(group_text, model.groups))


def group_text(group: SharedGroup) -> str:
    """One group's text, unchecked (see :func:`text_of`): its header, then
    a line per member, by JID."""
    header = f"[{'+' if group.public else ''}{group.name}]\n"
    members = group.members
    jids = sorted(members)
    if jids and _all_named(members):
        return header + "\n".join(map("=".join, zip(jids, map(members.__getitem__, jids), strict=True))) + "\n"
    return header + "".join(f"{jid}\n" if (name := members[jid]) is None else f"{jid}={name}\n" for jid in jids)


def with_lines_renamed(text: bytes, group: SharedGroup, jids: Collection[str]) -> bytes | None:
    """``text``, the UTF-8 text :func:`group_text` made for a group with the
    same header and the same JIDs as ``group``, with the member lines of
    ``jids`` made again from ``group``: what :func:`group_text` gives for
    ``group``, without sorting and joining every line of an all-staff group
    again for a few renamed members.  None when a JID has no line there.

    Member lines are sorted by JID, as UTF-8 bytes sort in the order of the
    code points, and a written JID holds no '=': each line is found by its
    JID in halves."""
    lines = text.split(b"\n")  # the header, the member lines, and "" after the last line end
    for jid in jids:
        raw = jid.encode("utf-8")
        at = bisect_left(lines, raw, 1, len(lines) - 1, key=_jid_of)
        if at == len(lines) - 1 or _jid_of(lines[at]) != raw:
            return None
        name = group.members[jid]
        lines[at] = raw if name is None else raw + b"=" + name.encode("utf-8")
    return b"\n".join(lines)


def _jid_of(line: bytes) -> bytes:
    return line.partition(b"=")[0]


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

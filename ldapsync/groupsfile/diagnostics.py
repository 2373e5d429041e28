"""What ``ldapsync check`` says about a groups file: each line Prosody
drops ("error") or reads differently from how it looks ("warning"), as the
reader (:mod:`.reading`) meets it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from ldapsync import jid as jidlib
from ldapsync.invisible import describe, escaped, has_invisible

_LUA_SPACE = jidlib.LUA_SPACE
_COMMENT_MARKS = ("#", ";", "//")


_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_XML_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> bool:
    """False when Prosody's util.stanza would refuse ``text`` in a roster item
    (control characters, U+FFFE/U+FFFF, bytes that were not UTF-8): Prosody
    then fails the whole roster request of the user."""
    return _XML_UNSAFE.search(text) is None


def printable(text: str) -> bool:
    """No control characters, line or paragraph separators, bytes that were
    not UTF-8 (surrogate escapes), or anything else XML cannot carry."""
    return text.isprintable() or (
        not any(unicodedata.category(c) in _BAD_CATEGORIES for c in text) and xml_safe(text))


def looks_like_comment(token: str) -> bool:
    """A token a person may have meant as a comment (a groups file has none)."""
    return token.startswith(_COMMENT_MARKS) and "@" not in token


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


class Collector:
    def __init__(self, sink: list[Diagnostic]) -> None:
        self.sink = sink

    def __call__(self, line: int, severity: Severity, code: str, message: str) -> None:
        self.sink.append(Diagnostic(line, severity, code, message))


def check_header(warn: Collector, number: int, line: str, name: str, is_public: bool, header_line: dict[str, int],
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
    elif not printable(name):
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


def invalid_jid(warn: Collector, number: int, line: str, token: str) -> None:
    stripped = line.lstrip(_LUA_SPACE)
    if line.startswith("\ufeff"):
        hint = "; a byte-order mark (BOM) starts the line"
    elif stripped.startswith("[") and "]" in stripped:
        hint = "; text after ']' makes this a member line, not a group header"
    elif looks_like_comment(token):
        hint = "; a groups file has no comments"
    elif any(0xDC80 <= ord(c) <= 0xDCFF for c in line):
        hint = "; the line is not valid UTF-8"
    else:
        hint = ""
    warn(number, "error", "invalid-jid", f"Prosody skips this line: {token!r} is not a valid JID{hint}")


def check_entry(warn: Collector, number: int, line: str, entry: str, token_match: re.Match[str], jid: str) -> None:
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
    elif looks_like_comment(token):
        warn(number, "warning", "comment",
             f"a groups file has no comments: Prosody reads this line as the member {jid}")
    elif token != jid:
        warn(number, "warning", "unprepared-jid", f"Prosody reads {token!r} as {jid!r}")
    rest = entry[token_match.end() :].strip(_LUA_SPACE)
    if rest:
        warn(number, "warning", "extra-text",
             f"Prosody reads only the JID {token!r}; {rest!r} before the '=' is ignored")


def check_member(warn: Collector, number: int, line: str, jid: str, eq: int, member_name: str,
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
    elif not printable(member_name.rstrip("\r")):
        warn(number, "warning", "control-char", f"the name {member_name!r} holds control characters")
    if has_invisible(member_name):
        warn(number, "warning", "invisible-characters", f"the name {escaped(member_name)} of {jid} holds "
             f"{describe(member_name)}: invisible or bidi characters hide or reorder what users see")
    if member_name == "":
        warn(number, "warning", "nameless",
             f"{jid} has an empty name: Prosody replaces the name users chose with it")

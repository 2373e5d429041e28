"""JID preparation exactly as Prosody 0.12 does it (``util/jid.lua`` ``prep``).

Prosody splits a JID into node, host and resource with Lua patterns, strips one
trailing ``.`` from the host, and runs the stringprep profiles nodeprep,
nameprep and resourceprep through ICU, non-strict (unassigned code points
allowed, no STD3 host rules), refusing any part of 1024 bytes or more.  The
stringprep tables (RFC 3454, Unicode 3.2) come from the standard library's
:mod:`stringprep`; the test suite checks this module against the real
``util.jid`` of the installed Prosody.
"""

from __future__ import annotations

import re
import stringprep
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Collection
from functools import lru_cache
from unicodedata import ucd_3_2_0

__all__ = ["prep", "split", "bare", "is_prepared", "LUA_SPACE"]

#: What Lua's ``%s`` matches (C ``isspace`` in the C locale).
LUA_SPACE = " \t\n\v\f\r"

_MAX_BYTES = 1024
_RANDAL = ("R", "AL")  # util/encodings.c works in 1024-byte / 1024-unit buffers

# RFC 3920 appendix A: nodeprep prohibits these ASCII characters as well.
_NODE_EXTRA = frozenset('"&\'/:<>@')

# Fast path: plain ASCII JIDs that no profile changes except by lower-casing.
# Node: printable ASCII minus space and the nodeprep extras.  Host: printable
# ASCII minus "@" and "/".  Resource: printable ASCII (space allowed).
_ASCII_JID = re.compile(
    r"(?:([!#-%(-.0-9;=?A-~]+)@)?([!-.0-?A-~]+)(?:/([ -~]+))?\Z"
)


def split(jid: str) -> tuple[str | None, str, str | None] | None:
    """Split like ``util.jid.split``: ``(node, host, resource)`` or None."""
    node = None
    rest = jid
    at = _first_of(jid, "@/")
    if at is not None and jid[at] == "@" and at > 0:
        node, rest = jid[:at], jid[at + 1 :]
    end = _first_of(rest, "@/")
    host = rest if end is None else rest[:end]
    if not host:
        return None
    if end is None:
        return node, host, None
    tail = rest[end:]
    if tail[0] == "/" and len(tail) > 1:
        return node, host, tail[1:]
    return None


def _first_of(text: str, chars: str) -> int | None:
    positions = [p for p in (text.find(c) for c in chars) if p >= 0]
    return min(positions) if positions else None


def _map_b2(ch: str) -> str:
    """Table B.2 (case folding for NFKC) as Unicode 3.2 defines it.

    ``stringprep.map_table_b2`` lower-cases with the running Python's Unicode
    database, which gave case pairs to characters that had none in 3.2 (the
    Cherokee letters, for one).  Such a mapping produces a character that 3.2
    did not have, and ICU's 3.2 tables leave the character alone.
    """
    mapped = stringprep.map_table_b2(ch)
    if mapped != ch and any(stringprep.in_table_a1(m) for m in mapped):
        return ch
    return mapped


# ICU checks the bidi rule with its own, current Unicode data rather than
# tables D.1/D.2 of Unicode 3.2.  Unassigned code points take the default
# classes of DerivedBidiClass.txt (Unicode 15): right-to-left in the blocks
# reserved for such scripts, BN for default ignorables, L everywhere else.
# The "ON" rows are neutral characters that Unicode 15 (ICU 72) added and
# Python 3.11's Unicode 14 database does not know yet.
_DEFAULT_BIDI = (
    (0x0590, 0x05FF, "R"), (0x0600, 0x07BF, "AL"), (0x07C0, 0x085F, "R"),
    (0x0860, 0x08FF, "AL"), (0x0ECE, 0x0ECE, "ON"), (0x2060, 0x206F, "BN"),
    (0x20A0, 0x20CF, "ET"), (0xFB1D, 0xFB4F, "R"), (0xFB50, 0xFDCF, "AL"),
    (0xFDD0, 0xFDEF, "BN"), (0xFDF0, 0xFDFF, "AL"), (0xFE70, 0xFEFF, "AL"),
    (0xFFF0, 0xFFF8, "BN"), (0x10800, 0x10CFF, "R"), (0x10D00, 0x10D3F, "AL"),
    (0x10D40, 0x10EBF, "R"), (0x10EC0, 0x10EFC, "AL"), (0x10EFD, 0x10EFF, "ON"),
    (0x10F00, 0x10F2F, "R"), (0x10F30, 0x10F6F, "AL"), (0x10F70, 0x10FFF, "R"),
    (0x11241, 0x11241, "ON"), (0x11F00, 0x11F01, "ON"), (0x11F36, 0x11F3A, "ON"),
    (0x11F40, 0x11F40, "ON"), (0x11F42, 0x11F42, "ON"), (0x13440, 0x13440, "ON"),
    (0x13447, 0x13455, "ON"), (0x1E08F, 0x1E08F, "ON"), (0x1E4EC, 0x1E4EF, "ON"),
    (0x1E800, 0x1EC6F, "R"), (0x1EC70, 0x1ECBF, "AL"), (0x1ECC0, 0x1ECFF, "R"),
    (0x1ED00, 0x1ED4F, "AL"), (0x1ED50, 0x1EDFF, "R"), (0x1EE00, 0x1EEFF, "AL"),
    (0x1EF00, 0x1EFFF, "R"), (0x1F6DC, 0x1F6DC, "ON"), (0x1F774, 0x1F776, "ON"),
    (0x1F77B, 0x1F77F, "ON"), (0x1F7D9, 0x1F7D9, "ON"), (0x1FA75, 0x1FA77, "ON"),
    (0x1FA87, 0x1FA88, "ON"), (0x1FAAD, 0x1FAAF, "ON"), (0x1FABB, 0x1FABD, "ON"),
    (0x1FABF, 0x1FABF, "ON"), (0x1FACE, 0x1FACF, "ON"), (0x1FADA, 0x1FADB, "ON"),
    (0x1FAE8, 0x1FAE8, "ON"), (0x1FAF7, 0x1FAF8, "ON"), (0xE0000, 0xE0FFF, "BN"),
)
_DEFAULT_STARTS = [lo for lo, _, _ in _DEFAULT_BIDI]


def _bidi_class(ch: str) -> str:
    cls = unicodedata.bidirectional(ch)
    if cls:
        return cls
    cp = ord(ch)
    if (cp & 0xFFFE) == 0xFFFE:
        return "BN"
    i = bisect_right(_DEFAULT_STARTS, cp) - 1
    if i >= 0 and cp <= _DEFAULT_BIDI[i][1]:
        return _DEFAULT_BIDI[i][2]
    return "L"


def _prohibited_common(ch: str) -> bool:
    return (
        stringprep.in_table_c12(ch)
        or stringprep.in_table_c22(ch)
        or stringprep.in_table_c3(ch)
        or stringprep.in_table_c4(ch)
        or stringprep.in_table_c5(ch)
        or stringprep.in_table_c6(ch)
        or stringprep.in_table_c7(ch)
        or stringprep.in_table_c8(ch)
        or stringprep.in_table_c9(ch)
    )


def _prohibited_node(ch: str) -> bool:
    return (
        ch in _NODE_EXTRA
        or stringprep.in_table_c11(ch)
        or stringprep.in_table_c21(ch)
        or _prohibited_common(ch)
    )


def _prohibited_resource(ch: str) -> bool:
    return stringprep.in_table_c21(ch) or _prohibited_common(ch)


def _stringprep(text: str, case_fold: bool, prohibited: Callable[[str], bool]) -> str | None:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
        return None
    if len(raw) >= _MAX_BYTES:
        return None
    out = []
    for ch in text:
        if stringprep.in_table_b1(ch):
            continue
        if case_fold and not stringprep.in_table_a1(ch):
            out.append(_map_b2(ch))
        else:
            out.append(ch)
    result = ucd_3_2_0.normalize("NFKC", "".join(out))
    classes = []
    for ch in result:
        if prohibited(ch):
            return None
        classes.append(_bidi_class(ch))
    if ("R" in classes or "AL" in classes) and (
        "L" in classes or classes[0] not in _RANDAL or classes[-1] not in _RANDAL
    ):
        return None
    utf16_units = len(result.encode("utf-16-le")) // 2
    if utf16_units > _MAX_BYTES or len(result.encode("utf-8")) >= _MAX_BYTES:
        return None
    return result


def nodeprep(text: str) -> str | None:
    return _stringprep(text, True, _prohibited_node)


def nameprep(text: str) -> str | None:
    return _stringprep(text, True, _prohibited_common)


def resourceprep(text: str) -> str | None:
    return _stringprep(text, False, _prohibited_resource)


@lru_cache(maxsize=262144)
def prep(jid: str) -> str | None:
    """Return ``jid`` as Prosody prepares it, or None where Prosody rejects it.

    Text that came from undecodable bytes (``surrogateescape``) is rejected,
    as Prosody rejects invalid UTF-8.
    """
    fast = _ASCII_JID.match(jid)
    if fast is not None:
        node, host, resource = fast.groups()
        if host == ".":
            return None
        if host.endswith("."):
            host = host[:-1]
        if len(host) < _MAX_BYTES and (node is None or len(node) < _MAX_BYTES) and (
            resource is None or len(resource) < _MAX_BYTES
        ):
            out = host.lower()
            if node is not None:
                out = node.lower() + "@" + out
            if resource is not None:
                out += "/" + resource
            return out
    parts = split(jid)
    if parts is None:
        return None
    return _prep_parts(*parts)


def _prep_parts(node: str | None, host: str, resource: str | None) -> str | None:
    """:func:`prep` of a JID split into its parts: each part prepared by its
    own stringprep profile."""
    if host == ".":
        return None
    if host.endswith("."):
        host = host[:-1]
    prepared_host = nameprep(host)
    if prepared_host is None:
        return None
    if node is not None:
        node = nodeprep(node)
        if node is None:
            return None
    out = prepared_host
    if node is not None:
        out = node + "@" + out
    if resource is not None:
        resource = resourceprep(resource)
        if resource is None:
            return None
        out += "/" + resource
    return out


def is_prepared(jid: str) -> bool:
    """True when ``jid`` is valid and already in the form Prosody stores."""
    return prep(jid) == jid


# node@host in lower-case ASCII letters, digits and a few marks: prepared as
# it is (nothing to case-fold, normalise or refuse), checked a line at a time
_PLAIN_LINES = re.compile(r"(?:[a-z0-9_.+-]{1,255}@[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){0,15}\n)*\Z")


def all_prepared(jids: Collection[str]) -> bool:
    """:func:`is_prepared` for every JID of ``jids``: one pattern match over
    all of them when they are plain ``user@example.com`` JIDs, as nearly all
    are, else one by one."""
    text = "\n".join(jids)
    if text.count("\n") == len(jids) - 1 and _PLAIN_LINES.match(text + "\n") is not None:
        return True
    return all(map(is_prepared, jids))


def bare(jid: str) -> str:
    """The bare part (``node@host`` or ``host``) of a prepared JID."""
    slash = jid.find("/")
    return jid if slash < 0 else jid[:slash]

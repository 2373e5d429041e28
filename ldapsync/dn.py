"""Distinguished names compared the way the directory compares them.

The same entry comes back in several spellings: its own DN hex-escaped
(``cn=R&D\\2C Europe``), member values as they were stored
(``cn=R&D\\, Europe``, ``UID=alice,OU=People,DC=Example,DC=COM``,
``uid=bob, ou=people, dc=example, dc=com``).  :func:`normalize` maps all of
them to one key: attribute types and values lower-cased, escapes resolved,
spaces around separators dropped.  (Every naming attribute in common use,
cn, uid, ou, dc, o, l, is case-insensitive.)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache

_HEX = re.compile(r"\\([0-9A-Fa-f]{2})")


# Anything that needs more than lower-casing: escapes, quotes, multi-valued
# RDNs, white space around a separator or at either end.
_NOT_PLAIN = re.compile(r'[\\"+]|\s[,=]|[,=]\s|^\s|\s$')


def normalize(dn: str) -> str:
    """A comparison key for ``dn``; equal keys mean the same entry."""
    if _NOT_PLAIN.search(dn) is None:
        return dn.lower()  # by far the most common case
    if "\\" not in dn and '"' not in dn and "+" not in dn:
        return ",".join(_plain_rdn(rdn) for rdn in dn.split(","))
    return _normalize_escaped(dn)


# _NOT_PLAIN for many DNs joined by line breaks: each DN's ends are line ends.
_NOT_PLAIN_LINES = re.compile(r'[\\"+]|\s[,=]|[,=]\s|^\s|\s$', re.MULTILINE)


def normalize_many(dns: list[str]) -> list[str]:
    """:func:`normalize` of each DN, many at once: when none needs more than
    lower-casing (the usual case), one pattern search and one lower() serve
    them all."""
    joined = "\n".join(dns)
    if _plain_ascii(joined) or _NOT_PLAIN_LINES.search(joined) is None:
        keys = joined.lower().split("\n")
        if len(keys) == len(dns):  # no DN held a line break of its own
            return keys
    return [normalize(dn) for dn in dns]


# What _NOT_PLAIN_LINES looks for, in ASCII text: the characters it needs
# besides the line breaks between the DNs (white space is \s in Python).
_ASCII_NOT_PLAIN = ('\\', '"', "+", " ", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _plain_ascii(joined: str) -> bool:
    """Whether DNs joined by line breaks are ASCII with none of those
    characters: then none needs more than lower-casing.  (Searching for a
    few characters is much faster than the pattern over a large text.)"""
    return joined.isascii() and not any(c in joined for c in _ASCII_NOT_PLAIN)


def _plain_rdn(rdn: str) -> str:
    kind, _, value = rdn.partition("=")
    return f"{kind.strip().lower()}={value.strip().lower()}"


@lru_cache(maxsize=65536)
def _normalize_escaped(dn: str) -> str:
    rdns: list[str] = []
    for rdn in _split(dn, ","):
        parts = sorted(_ava(ava) for ava in _split(rdn, "+"))
        rdns.append("+".join(parts))
    return ",".join(rdns)


def _ava(text: str) -> str:
    kind, _, value = text.partition("=")
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    plain = _unescape(value).lower()
    # re-escape the separators so that the key splits like a DN
    plain = plain.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+").replace("=", "\\=")
    return f"{kind.strip().lower()}={plain}"


def _unescape(value: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and _HEX.fullmatch("\\" + pair):
                raw.append(int(pair, 16))
                i += 3
                continue
            raw.extend(value[i + 1].encode("utf-8"))
            i += 2
            continue
        raw.extend(ch.encode("utf-8"))
        i += 1
    return raw.decode("utf-8", "replace").strip()


def _split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` where it is neither escaped nor quoted."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def named_keys(values: Sequence[str], keys: Collection[str]) -> set[str]:
    """Which of ``keys`` the DNs ``values`` name: ``{normalize(v) for v in
    values} & keys``, without normalizing the values that cannot match.  A
    DN with a key has that key's first RDN value in it (ignoring case),
    unless escapes or quotes spell it otherwise: only the values holding one
    of those values are normalized, and all of them when any holds a
    backslash or a quote."""
    if not keys or not values:
        return set()
    needles = _first_values(keys)
    text = "\n".join(values).lower()
    if needles is not None and "\\" not in text and '"' not in text:
        if not any(n in text for n in needles):
            return set()
        values = [v for v in values if any(n in v.lower() for n in needles)]
    return set(normalize_many(list(values))).intersection(keys)


def _first_values(keys: Collection[str]) -> tuple[str, ...] | None:
    """The value of each key's first RDN (its first AVA); None when one is
    escaped or empty, and cannot be looked for as it is."""
    found = set()
    for key in keys:
        first = key.split(",", 1)[0]
        value = first.partition("=")[2].split("+", 1)[0]
        if not value or "\\" in first:
            return None
        found.add(value)
    return tuple(found)


def strip_uid_suffix(value: str) -> str:
    """``uniqueMember`` may end in an optional ``#'0101'B`` (RFC 4517 Name
    and Optional UID); the DN is what comes before it."""
    if value.endswith("'B"):
        hash_at = value.rfind("#'")
        if hash_at > 0:
            return value[:hash_at]
    return value


def is_under(dn_key: str, base_key: str) -> bool:
    """Whether the normalised ``dn_key`` lies at or below ``base_key``."""
    return dn_key == base_key or dn_key.endswith("," + base_key)

"""An in-memory directory for fast unit tests of the pipeline (in the spirit
of pip-tools' FakeRepository): the same :class:`Directory` interface the
real backends have, over a dict of entries, with LDAP's base and scope
rules and its filters (and, or, not, equality, presence, substrings;
matched without regard to case).  It can be made unreachable, or made to
drop the connection after some entries, as real servers do.  With
``context`` it offers a change marker as OpenLDAP's syncprov does (the
contextCSN of the naming context, which changes with every write), but no
content sync: a run can tell that nothing changed, and reads everything
when anything did.

Tests that claim LDAP works use a real slapd (tests/ldap); this one is for
what ldapsync does with an answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence

from ldap3.operation.search import AND, MATCH_EQUAL, MATCH_PRESENT, MATCH_SUBSTRING, NOT, OR, ROOT, parse_filter

from ldapsync import dn as dnlib
from ldapsync.config import LdapSettings
from ldapsync.directory import Directory, DirectoryError, Entry
from ldapsync.directory.changes import SYNC_CONTROL


class MemoryDirectory(Directory):
    """``entries``: DN -> {attribute: [values]}."""

    def __init__(self, entries: Mapping[str, Mapping[str, Sequence[str]]], *, unreachable: bool = False,
                 drop_after: int | None = None, context: str | None = None) -> None:
        super().__init__(LdapSettings(servers=["ldap://directory.invalid"]), None, progress=False)
        # (entries_sent is the base class's count of entries sent)
        self.data = {dn: {k.lower(): list(v) for k, v in attrs.items()} for dn, attrs in entries.items()}
        self.keys = {dn: dnlib.normalize(dn) for dn in self.data}  # each DN's comparison key
        self.context = context
        self.unreachable = unreachable
        self.drop_after = drop_after  # entries returned in all before the "connection" drops
        self.returned = 0
        self.connected = False

    def connect(self) -> None:
        if self.unreachable:
            raise DirectoryError(f"directory unavailable: {self.url}: can't contact LDAP server")
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def _paged_search(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                      what: str) -> Iterator[Entry]:
        assert self.connected, "search outside 'with directory:'"
        self.searches += 1
        test = _matcher(filter)
        base_key = dnlib.normalize(base)
        if not any(dnlib.is_under(key, base_key) for key in self.keys.values()):
            raise DirectoryError(f"search for {what}: the base {base!r} does not exist")
        wanted = {a.lower() for a in attributes}
        for dn, attrs in self.data.items():
            if _within(self.keys[dn], base_key, scope) and test(attrs):
                if self.drop_after is not None and self.returned >= self.drop_after:
                    raise DirectoryError(f"search for {what} under {base!r} failed after {self.returned} "
                                         "entries: connection dropped")
                self.returned += 1
                yield Entry(dn, {k: list(v) for k, v in attrs.items() if k in wanted})

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]]:
        wanted = {a.lower() for a in attributes}
        if dn == "":
            attrs = {"namingcontexts": [self.context], "supportedcontrol": [SYNC_CONTROL]} if self.context else {}
        elif self.context is not None and dnlib.normalize(dn) == dnlib.normalize(self.context):
            csn = hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()
            attrs = {"contextcsn": [csn]}
        elif dn in self.data:
            attrs = self.data[dn]
        else:
            raise DirectoryError(f"read of {dn!r}: no such object")
        self.entries_sent += 1
        return {k: list(v) for k, v in attrs.items() if k in wanted}


def _within(dn: str, base: str, scope: str) -> bool:
    if scope == "base":
        return dn == base
    if scope == "one":
        return dn.partition(",")[2] == base
    return dnlib.is_under(dn, base)


def _matcher(text: str):
    root = parse_filter(text, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)

    def values(attrs, name):
        return [v.lower() for v in attrs.get(name.lower(), ())]

    def test(node, attrs) -> bool:
        if node.tag in (ROOT, AND):
            return all(test(n, attrs) for n in node.elements)
        if node.tag == OR:
            return any(test(n, attrs) for n in node.elements)
        if node.tag == NOT:
            return not test(node.elements[0], attrs)
        a = node.assertion
        if node.tag == MATCH_PRESENT:
            return bool(values(attrs, a["attr"]))
        if node.tag == MATCH_EQUAL:
            return a["value"].decode().lower() in values(attrs, a["attr"])
        if node.tag == MATCH_SUBSTRING:
            parts = [a.get("initial") or b"", *a.get("any", []), a.get("final") or b""]
            pattern = [p.decode().lower() for p in parts]
            return any(_substring(v, pattern) for v in values(attrs, a["attr"]))
        raise NotImplementedError(f"the memory directory has no matching rule for filter part {node.tag}")

    return lambda attrs: test(root, attrs)


def _substring(value: str, parts: list[str]) -> bool:
    """``initial*any*...*final`` against one value."""
    initial, *middle, final = parts
    if not value.startswith(initial):
        return False
    at = len(initial)
    for part in middle:
        at = value.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return len(value) - at >= len(final) and value.endswith(final)

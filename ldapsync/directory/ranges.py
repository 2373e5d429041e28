"""Range retrieval (``member;range=0-1499``), shared by both directory backends.

Active Directory returns at most 1,500 values of a multi-valued attribute
(``MaxValRange``) in one answer: a group with more members comes back with
``member;range=0-1499`` instead of ``member``, and the client asks for the
rest, one base-scope search per range (``member;range=1500-2999``, ...),
until the server answers with a range that ends in ``*``.  Samba never does
this by itself but honours ranges a client asks for, which is what
``groups.range_size`` does.

The backends differ only in how they run one base-scope search; everything
about the names and the order of the follow-ups is here, so that both read
a ranged group the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

# "member;range=0-1499", "member;range=1500-*"; other options may come first
# ("member;binary;range=..."), and AD spells the option in any case.
_RANGE = re.compile(r"^(?P<attr>[^;]+(?:;(?!range=)[^;]+)*);range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Range:
    """One answered range of an attribute's values: ``attribute;range=low-high``,
    ``high`` None for ``*`` (these are the last values)."""

    attribute: str
    low: int
    high: int | None

    @property
    def last(self) -> bool:
        return self.high is None

    def next_request(self) -> str:
        """The attribute description that asks for the values after these,
        as many as this answer held (AD caps each answer at its own limit
        anyway)."""
        if self.high is None:
            raise ValueError(f"{self} is the last range")
        width = self.high - self.low + 1
        return request(self.attribute, self.high + 1, self.high + width)

    def __str__(self) -> str:
        return f"{self.attribute};range={self.low}-{'*' if self.high is None else self.high}"


def parse(name: str) -> Range | None:
    """The range an attribute description of an answer carries, or None for
    a plain attribute."""
    found = _RANGE.match(name)
    if found is None:
        return None
    low, high = int(found["low"]), None if found["high"] == "*" else int(found["high"])
    if high is not None and high < low:
        raise RangeError(f"the server answered {name}, a range that ends before it starts")
    return Range(found["attr"], low, high)


def request(attribute: str, low: int, high: int | None = None) -> str:
    """The attribute description asking for values ``low`` to ``high``
    (to the end when None): ``member;range=0-499``."""
    if low < 0 or (high is not None and high < low):
        raise ValueError(f"not a range: {low}-{high}")
    return f"{attribute};range={low}-{'*' if high is None else high}"


def first_request(attribute: str, size: int) -> str:
    """Ask for the first ``size`` values: ``member;range=0-(size-1)``."""
    if size < 1:
        raise ValueError("a range holds at least one value")
    return request(attribute, 0, size - 1)


def is_ranged(attrs: dict[str, list[str]]) -> bool:
    """Whether an answer holds ranged attributes."""
    return any(";range=" in name.lower() for name in attrs)


def needs_more(attrs: dict[str, list[str]]) -> bool:
    """Whether an answer holds a range that is not the last."""
    return any(r is not None and not r.last for r in map(parse, attrs))


class RangeError(Exception):
    """The server's ranged answers do not add up (the backends turn this
    into a DirectoryError: an incomplete answer is never used)."""


class _Entry(Protocol):
    @property
    def dn(self) -> str: ...

    @property
    def attrs(self) -> dict[str, list[str]]: ...


E = TypeVar("E", bound=_Entry)


# One base-scope search of ``dn`` for one attribute description; the answer's
# attributes, keyed by lower-cased name (empty when the entry has none).
Fetch = Callable[[str, str], dict[str, list[str]]]


def complete(dn: str, attrs: dict[str, list[str]], fetch: Fetch) -> tuple[dict[str, list[str]], int]:
    """``attrs`` with every ranged attribute replaced by all its values under
    the plain (lower-cased) name, asking ``fetch`` for the ranges still
    missing; and how many follow-up searches that took."""
    out: dict[str, list[str]] = {}
    ranged: list[tuple[Range, list[str]]] = []
    for name, values in attrs.items():
        r = parse(name)
        if r is None:
            out.setdefault(name, []).extend(values)
        else:
            ranged.append((r, values))
    searches = 0
    for r, values in ranged:
        key = r.attribute.lower()
        collected = list(values)
        if r.low != 0:
            raise RangeError(f"{dn}: the first answer for {r.attribute} is {r}, not a range from 0")
        while r.high is not None:  # not the last range
            wanted = r.next_request()
            answer = fetch(dn, wanted)
            searches += 1
            parsed = [(parse(name), v) for name, v in answer.items()]
            found = [(a, v) for a, v in parsed if a is not None and a.attribute.lower() == key]
            if len(found) != 1 or found[0][0].low != r.high + 1:
                got = ", ".join(answer) or "nothing"
                raise RangeError(f"{dn}: asked for {wanted}, the server answered {got} (did the group change "
                                 "while it was read?)")
            r, more = found[0]
            collected.extend(more)
        out.setdefault(key, []).extend(collected)
    return out, searches


def completed(entries: Iterable[E], fetch: Fetch, make: Callable[[str, dict[str, list[str]]], E],
              counted: Callable[[str, dict[str, int], int], None]) -> Iterator[E]:
    """The entries of a search, those with ranged attributes completed.

    Those are set aside until the search itself has ended, then completed
    one by one: a follow-up search never runs in the middle of a paged
    search, whose last result (size limit, ...) must be checked first.
    ``counted(dn, {attribute: values}, searches)`` hears of each."""
    pending = []
    for entry in entries:
        if ";" not in "".join(entry.attrs):  # no attribute options, so no ranges: nearly every entry
            yield entry
        elif needs_more(entry.attrs):
            pending.append(entry)
        elif is_ranged(entry.attrs):  # all values in one answer ("member;range=0-*")
            yield make(entry.dn, complete(entry.dn, entry.attrs, fetch)[0])
        else:
            yield entry
    for entry in pending:
        attrs, searches = complete(entry.dn, entry.attrs, fetch)
        names = {r.attribute.lower() for r in map(parse, entry.attrs) if r is not None}
        counted(entry.dn, {name: len(attrs[name]) for name in sorted(names)}, searches)
        yield make(entry.dn, attrs)

"""Shared groups as ldapsync means them: the intended content of a groups file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType


def _freeze(members: Mapping[str, str | None]) -> Mapping[str, str | None]:
    # An empty name and no name mean the same to Prosody (both give ""), so the
    # model knows only "no name": None.
    if "" in members.values():
        return MappingProxyType({jid: (name or None) for jid, name in members.items()})
    return MappingProxyType(dict(members))


@dataclass(frozen=True)
class SharedGroup:
    """One shared group: its name, whether every user of the host sees it, and
    its members as prepared JID -> display name (None: no name)."""

    name: str
    members: Mapping[str, str | None] = field(default_factory=dict)
    public: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", _freeze(self.members))


@dataclass(frozen=True)
class GroupsModel:
    """All shared groups of one groups file, ordered by name so that the same
    groups always give the same file."""

    groups: tuple[SharedGroup, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.groups, key=lambda g: g.name))
        for a, b in pairwise(ordered):
            if a.name == b.name:
                raise ValueError(f"two groups are named {a.name!r}")
        object.__setattr__(self, "groups", ordered)

    @classmethod
    def of(cls, groups: Iterable[SharedGroup]) -> GroupsModel:
        return cls(tuple(groups))

    def group(self, name: str) -> SharedGroup | None:
        for g in self.groups:
            if g.name == name:
                return g
        return None

    @property
    def member_count(self) -> int:
        """Member lines: a JID counts once per group it is in."""
        return sum(len(g.members) for g in self.groups)

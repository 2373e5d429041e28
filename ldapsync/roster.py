"""The merge engine: the roster Prosody sends a user at login.

This is ``inject_roster_contacts`` of mod_groups (Prosody 0.12): start from the
user's personal roster; apply the user's own groups in the order of the user's
member lines, then every public group in header order; skip only the user's
own bare JID; every injected contact gets ``subscription = "both"``, the name
the applied group gives it (the last group applied wins, ``""`` included) and
that group added to its groups.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ldapsync import jid as jidlib
from ldapsync import safeio
from ldapsync.groupsfile import GroupsFile

SUBSCRIPTIONS = ("none", "from", "to", "both")


class RosterItem(NamedTuple):
    """One roster entry as the client receives it; ``groups`` sorted."""

    jid: str
    name: str | None
    subscription: str
    groups: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"jid": self.jid, "name": self.name, "subscription": self.subscription, "groups": list(self.groups)}


class Roster(Mapping[str, RosterItem]):
    """The roster Prosody sends one user, as a read-only mapping JID -> item.

    Items are made when asked for: a member of an all-staff group has one per
    user of the company, and most questions (how many, is X there, what is
    X's name) need none or one.
    """

    def __init__(self, personal: dict[str, RosterItem], names: dict[str, str], groups_of: dict[str, list[str]],
                 largest: str | None, largest_members: Mapping[str, str]) -> None:
        self._personal = personal
        self._names = names  # shared contact -> the name Prosody gives it
        self._groups_of = groups_of  # shared contact -> groups other than the largest
        self._largest = largest
        self._largest_members = largest_members
        self._personal_only = [j for j in personal if j not in names]

    def __getitem__(self, jid: str) -> RosterItem:
        mine = self._personal.get(jid)
        name = self._names.get(jid)
        if name is None:
            if mine is None:
                raise KeyError(jid)
            return mine
        groups = self._groups_of.get(jid, ())
        if jid in self._largest_members:
            groups = (self._largest, *groups)
        if mine is not None:
            groups = (*mine.groups, *groups)
        return RosterItem(jid, name, "both", tuple(sorted(set(groups))) if len(groups) > 1 else tuple(groups))

    def __iter__(self) -> Iterator[str]:
        yield from self._names
        yield from self._personal_only

    def __len__(self) -> int:
        return len(self._names) + len(self._personal_only)

    def __contains__(self, jid: object) -> bool:
        return jid in self._names or jid in self._personal


def build_roster(groups_file: GroupsFile, user: str, personal: Iterable[RosterItem] = ()) -> Roster:
    """The roster Prosody sends to ``user`` (a prepared bare JID) at login."""
    mine = {item.jid: item for item in personal}
    applied = groups_file.applied_groups(user)
    if not applied:
        return Roster(mine, {}, {}, None, {})
    groups = groups_file.groups
    names: dict[str, str] = {}
    for group in applied:  # dict.update keeps the last group's name, as Prosody does
        names.update(groups[group])
    names.pop(user, None)
    distinct = sorted(set(applied), key=lambda g: len(groups[g]), reverse=True)
    # Contacts are in the largest group or listed here with their other groups.
    groups_of: dict[str, list[str]] = {}
    for group in distinct[1:]:
        for contact in groups[group]:
            found = groups_of.get(contact)
            if found is None:
                groups_of[contact] = [group]
            else:
                found.append(group)
    return Roster(mine, names, groups_of, distinct[0], groups[distinct[0]])


def sorted_items(roster: Mapping[str, RosterItem]) -> list[RosterItem]:
    """The roster as Prosody holds it, sorted by JID."""
    return [roster[j] for j in sorted(roster)]


def received_items(roster: Mapping[str, RosterItem]) -> list[RosterItem]:
    """The roster as the client reads it, sorted by JID.

    Prosody puts names into XML as they are; the client's XML parser then
    turns a carriage return or tab in a name (an attribute) into a space, and
    a carriage return in a group name (element text) into a line feed.
    """
    return [_as_received(roster[j]) for j in sorted(roster)]


def _as_received(item: RosterItem) -> RosterItem:
    name = item.name
    if name is not None and ("\r" in name or "\t" in name):
        name = name.replace("\r\n", " ").replace("\r", " ").replace("\t", " ")
    groups = item.groups
    if any("\r" in g for g in groups):
        groups = tuple(sorted(g.replace("\r\n", "\n").replace("\r", "\n") for g in groups))
    return item if (name is item.name and groups is item.groups) else item._replace(name=name, groups=groups)


class PersonalRosterError(ValueError):
    """A personal roster file that is not a list of roster items."""


def load_personal_roster(path: str | Path) -> list[RosterItem]:
    """Read a personal roster: a JSON array of ``{"jid", "name", "subscription",
    "groups"}`` objects, the format ``preview --json`` prints."""
    try:
        data = json.loads(safeio.read_bytes(path, "roster", follow=True).decode("utf-8"))
    except (OSError, safeio.UnsafeFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PersonalRosterError(f"{path}: cannot read the personal roster: {exc}") from exc
    if not isinstance(data, list):
        raise PersonalRosterError(f"{path}: expected a JSON array of roster items")
    items = []
    for index, raw in enumerate(data):
        where = f"{path}: item {index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("jid"), str):
            raise PersonalRosterError(f"{where}: expected an object with a \"jid\" string")
        unknown = set(raw) - {"jid", "name", "subscription", "groups"}
        if unknown:
            raise PersonalRosterError(f"{where}: unknown keys {sorted(unknown)}")
        prepared = jidlib.prep(raw["jid"])
        if prepared is None:
            raise PersonalRosterError(f"{where}: {raw['jid']!r} is not a valid JID")
        name = raw.get("name")
        subscription = raw.get("subscription", "none")
        groups = raw.get("groups", [])
        if name is not None and not isinstance(name, str):
            raise PersonalRosterError(f"{where}: \"name\" must be a string or null")
        if subscription not in SUBSCRIPTIONS:
            raise PersonalRosterError(f"{where}: \"subscription\" must be one of {', '.join(SUBSCRIPTIONS)}")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise PersonalRosterError(f"{where}: \"groups\" must be a list of strings")
        items.append(RosterItem(prepared, name, subscription, tuple(sorted(set(groups)))))
    return items

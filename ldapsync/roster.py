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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ldapsync import jid as jidlib
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


Roster = dict[str, RosterItem]


def build_roster(groups_file: GroupsFile, user: str, personal: Iterable[RosterItem] = ()) -> Roster:
    """The roster Prosody sends to ``user`` (a prepared bare JID) at login."""
    roster: Roster = {item.jid: item for item in personal}
    applied = groups_file.applied_groups(user)
    if not applied:
        return roster
    groups = groups_file.groups
    names: dict[str, str] = {}
    for group in applied:  # dict.update keeps the last group's name, as Prosody does
        names.update(groups[group])
    names.pop(user, None)
    distinct = sorted(set(applied), key=lambda g: len(groups[g]), reverse=True)
    largest = groups[distinct[0]]
    # Contacts outside the largest group, or in several groups, get their group
    # list spelled out; everyone else is only in the largest group.
    extra: dict[str, list[str]] = {}
    for group in distinct[1:]:
        for contact in groups[group]:
            found = extra.get(contact)
            if found is None:
                extra[contact] = [group]
            else:
                found.append(group)
    only_largest = (distinct[0],)
    for contact, name in names.items():
        more = extra.get(contact)
        if more is None:
            shared = only_largest
        elif contact in largest:
            shared = (distinct[0], *more)
        else:
            shared = tuple(more)
        mine = roster.get(contact)
        if mine is not None:
            shared = (*mine.groups, *shared)
        roster[contact] = RosterItem(contact, name, "both", tuple(sorted(set(shared))) if len(shared) > 1 else shared)
    return roster


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
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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

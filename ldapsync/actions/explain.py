"""``explain``: why a JID is in each shared group (the directory groups
behind it, the nesting path down to the group that lists the user), or why
it is left out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ldapsync import jid as jidlib

if TYPE_CHECKING:
    from ldapsync.sync import Fetched


@dataclass
class Explanation:
    jid: str
    entries: list[dict] = field(default_factory=list)  # the directory users that give the JID
    groups: list[dict] = field(default_factory=list)  # each shared group, where from, and through which path
    left_out: list[dict] = field(default_factory=list)  # related users left out, and why
    no_group_reason: str | None = None  # a user was found, in no selected group: why
    node: str = ""
    uid_attribute: str = ""
    users_read: int = 0
    users_base: str = ""

    def as_json(self) -> dict:
        return {"jid": self.jid, "entries": self.entries, "groups": self.groups, "left_out": self.left_out}


def explain(snapshot: Fetched, jid: str) -> Explanation:
    """What ``snapshot`` (see :func:`ldapsync.sync.fetch`) says about ``jid``."""
    user = jidlib.prep(jid) or jid
    mapped, members, config = snapshot.mapped, snapshot.members, snapshot.config
    people = [p for p in mapped.people.values() if p.jid == user]
    node = user.split("@", 1)[0]
    uid_attr = config.users.uid_attribute
    report = Explanation(user, node=node, uid_attribute=uid_attr, users_read=len(members.users),
                         users_base=config.users.base)
    for p in people:
        report.entries.append({"dn": p.dn, "jid": p.jid, "name": p.name})
        for shared, group in sorted(mapped.groups.items()):
            if user in group.members:
                report.groups.append({"group": shared, "public": group.public,
                                      "from": mapped.sources.get(shared, []),
                                      "paths": _paths(snapshot, shared, p.key),
                                      "name_in_group": group.members[user]})
    # also the lookalikes whose uid only preparation makes this node ("alice" + a zero-width space)
    related = [k for k, e in members.users.items()
               if any(v.lower() == node or (not v.isascii() and jidlib.nodeprep(v) == node)
                      for v in e.attrs.get(uid_attr.lower(), ()))]
    found = {p.key for p in people}
    for key in related:
        if key in mapped.left_out and key not in found:
            report.left_out.append({"dn": members.users[key].dn, "why": mapped.left_out[key].why})
    if people and not report.groups:
        left = mapped.left_out.get(people[0].key)
        report.no_group_reason = left.why if left else "no membership found"
    return report


def _paths(snapshot: Fetched, shared: str, user_key: str) -> list[list[str]]:
    """The nesting paths from each directory group behind ``shared`` down to the group listing the user."""
    members, sources = snapshot.members, snapshot.mapped.sources.get(shared, ())
    paths = []
    for dn_key, entry in members.groups.items():
        if entry.dn in sources:
            chain = members.path(dn_key, user_key, snapshot.config.groups.max_depth)
            if chain is not None:
                paths.append([members.groups[g].dn for g in chain])
    return paths

"""Random, real changes to the syncprov test directory (syncprov_directory),
made through an admin ldap3 connection, reproducible from a seed.

Each step picks an operation that can succeed on the data as it is now (it
searches the directory, never trusts a memory of it) and returns a one-line
description for failure messages. Deleting or renaming an entry lets the
refint overlay rewrite the member values that name it, in the background;
a step returns only once no member value names the old DN any more, so that
two reads after it see the same directory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import ldap3
from ldap3.utils.conv import escape_filter_chars

from tests.ldap.syncprov_directory import BASE, ELSEWHERE, GROUPS, POSIX_GROUP, USER_OUS

USER_HOMES = (*USER_OUS, ELSEWHERE)
MIN_USERS = 12
MIN_GROUPS = 4
REFINT_TIMEOUT = 10.0


def _rdn(dn: str) -> tuple[str, str]:
    attr, value = dn.split(",", 1)[0].split("=", 1)
    return attr, value


def _parent(dn: str) -> str:
    return dn.split(",", 1)[1]


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


class Mutator:
    """The operations; step() runs one chosen at random."""

    def __init__(self, conn: ldap3.Connection, rng: random.Random) -> None:
        self.conn = conn
        self.rng = rng
        self.serial = 0
        # Member values added for entries that do not exist; add_user may create one later.
        self.ghosts: list[str] = []

    # --- reading the directory as it is ---

    def _search(self, base: str, search_filter: str, attributes: list[str]) -> dict[str, dict[str, list[str]]]:
        self.conn.search(base, search_filter, ldap3.SUBTREE, attributes=attributes)
        return {e["dn"]: {k: [v.decode() if isinstance(v, bytes) else v for v in vals]
                          for k, vals in e["raw_attributes"].items()}
                for e in self.conn.response if e["type"] == "searchResEntry"}

    def users(self) -> dict[str, dict[str, list[str]]]:
        return self._search(BASE, "(objectClass=inetOrgPerson)", ["uid", "cn", "displayName", "employeeType"])

    def groups(self) -> dict[str, dict[str, list[str]]]:
        return self._search(GROUPS, "(objectClass=groupOfNames)", ["cn", "member", "description"])

    def _pick(self, entries: dict) -> str:
        return self.rng.choice(sorted(entries))

    def _name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:04d}"

    def wait_for_refint(self, old_dn: str) -> None:
        """Until no member value names old_dn (refint rewrites them after the answer)."""
        deadline = time.monotonic() + REFINT_TIMEOUT
        while time.monotonic() < deadline:
            if not self._search(BASE, f"(member={escape_filter_chars(old_dn)})", ["1.1"]):
                return
            time.sleep(0.01)
        raise AssertionError(f"refint left member values naming {old_dn} after {REFINT_TIMEOUT:.0f} s")

    # --- users ---

    def add_user(self) -> str:
        if self.ghosts and self.rng.random() < 0.5:
            dn = self.ghosts.pop(self.rng.randrange(len(self.ghosts)))
            attr, value = _rdn(dn)
            uid = value if attr == "uid" else self._name("u")
        else:
            uid = self._name("new")
            home = self.rng.choice(USER_HOMES)
            dn = f"uid={uid},{home}" if self.rng.random() < 0.6 else f"cn=Person {uid},{home}"
        attrs = {"objectClass": ["inetOrgPerson"], "uid": uid, "sn": "New", "mail": f"{uid}@example.com",
                 "cn": _rdn(dn)[1] if _rdn(dn)[0] == "cn" else f"Person {uid}"}
        if self.rng.random() < 0.7:
            attrs["displayName"] = f"Display {uid}"
        disabled = self.rng.random() < 0.2
        if disabled:
            attrs["employeeType"] = "disabled"
        self.conn.add(dn, attributes=attrs)
        joined = []
        groups = self.groups()
        outside = sorted(g for g, a in groups.items() if not any(_same(m, dn) for m in a.get("member", [])))
        for group in self.rng.sample(outside, k=min(len(outside), self.rng.randint(0, 2))):
            self.conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [dn])]})
            joined.append(_rdn(group)[1])
        return f"add user {dn}{' (disabled)' if disabled else ''} to groups {joined}"

    def delete_user(self) -> str | None:
        users = self.users()
        if len(users) <= MIN_USERS:
            return None
        dn = self._pick(users)
        self.conn.delete(dn)
        self.wait_for_refint(dn)
        return f"delete user {dn}"

    def rename_user(self) -> str:
        """A new RDN value: for uid=... users that is a new uid (and JID), for cn=... a new cn."""
        dn = self._pick(self.users())
        attr, _ = _rdn(dn)
        new_rdn = f"uid={self._name('ren')}" if attr == "uid" else f"cn=Renamed {self._name('p')}"
        self.conn.modify_dn(dn, new_rdn, delete_old_dn=True)
        self.wait_for_refint(dn)
        return f"rename user {dn} to {new_rdn}"

    def move_user(self) -> str:
        dn = self._pick(self.users())
        target = self.rng.choice([h for h in USER_HOMES if not _same(h, _parent(dn))])
        self.conn.modify_dn(dn, dn.split(",", 1)[0], delete_old_dn=True, new_superior=target)
        self.wait_for_refint(dn)
        return f"move user {dn} to {target}"

    def change_display_name(self) -> str:
        users = self.users()
        dn = self._pick(users)
        if users[dn].get("displayName") and self.rng.random() < 0.3:
            self.conn.modify(dn, {"displayName": [(ldap3.MODIFY_DELETE, [])]})
            return f"remove displayName of {dn}"
        name = f"Shown As {self._name('n')}"
        self.conn.modify(dn, {"displayName": [(ldap3.MODIFY_REPLACE, [name])]})
        return f"displayName of {dn} := {name!r}"

    def change_uid(self) -> str | None:
        """Only users named by cn: a uid=... RDN must keep its value."""
        named_by_cn = {dn: a for dn, a in self.users().items() if _rdn(dn)[0] == "cn"}
        if not named_by_cn:
            return None
        dn = self._pick(named_by_cn)
        uid = self._name("uid")
        self.conn.modify(dn, {"uid": [(ldap3.MODIFY_REPLACE, [uid])]})
        return f"uid of {dn} := {uid}"

    def toggle_disabled(self) -> str:
        users = self.users()
        dn = self._pick(users)
        if "disabled" in users[dn].get("employeeType", []):
            self.conn.modify(dn, {"employeeType": [(ldap3.MODIFY_DELETE, ["disabled"])]})
            return f"enable {dn}"
        self.conn.modify(dn, {"employeeType": [(ldap3.MODIFY_ADD, ["disabled"])]})
        return f"disable {dn}"

    # --- memberships ---

    def add_member(self) -> str | None:
        groups = self.groups()
        group = self._pick(groups)
        present = {m.lower() for m in groups[group].get("member", [])}
        candidates = [dn for dn in self.users() if dn.lower() not in present]
        if not candidates:
            return None
        dn = self.rng.choice(sorted(candidates))
        self.conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [dn])]})
        return f"add {dn} to {group}"

    def remove_member(self, *, groups_only: bool = False) -> str | None:
        """Never the last member: groupOfNames needs one."""
        groups = self.groups()
        group = self._pick(groups)
        members = groups[group].get("member", [])
        candidates = [m for m in members if not groups_only or m.lower().endswith(GROUPS.lower())]
        if len(members) < 2 or not candidates:
            return None
        dn = self.rng.choice(sorted(candidates))
        self.conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [dn])]})
        return f"remove {dn} from {group}"

    def nest_group(self) -> str | None:
        """A group as a member of another; random pairs close cycles now and then."""
        groups = self.groups()
        parent, child = self.rng.sample(sorted(groups), 2)
        if any(_same(m, child) for m in groups[parent].get("member", [])):
            return None
        self.conn.modify(parent, {"member": [(ldap3.MODIFY_ADD, [child])]})
        cycle = any(_same(m, parent) for m in groups[child].get("member", []))
        return f"nest {child} in {parent}{' (a cycle of two)' if cycle else ''}"

    def unnest_group(self) -> str | None:
        return self.remove_member(groups_only=True)

    def add_ghost_member(self) -> str:
        """A member value for an entry that does not exist (yet)."""
        home = self.rng.choice(USER_HOMES)
        dn = f"uid={self._name('ghost')},{home}"
        group = self._pick(self.groups())
        self.conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [dn])]})
        self.ghosts.append(dn)
        return f"add the missing entry {dn} to {group}"

    def change_posix_member(self) -> str:
        self.conn.search(POSIX_GROUP, "(objectClass=*)", ldap3.BASE, attributes=["memberUid"])
        uids = self.conn.response[0]["attributes"].get("memberUid", [])
        if uids and self.rng.random() < 0.4:
            uid = self.rng.choice(sorted(uids))
            self.conn.modify(POSIX_GROUP, {"memberUid": [(ldap3.MODIFY_DELETE, [uid])]})
            return f"remove memberUid {uid} from {POSIX_GROUP}"
        known = sorted({u for a in self.users().values() for u in a.get("uid", [])} - set(uids))
        uid = self.rng.choice(known) if known else self._name("nouid")
        self.conn.modify(POSIX_GROUP, {"memberUid": [(ldap3.MODIFY_ADD, [uid])]})
        return f"add memberUid {uid} to {POSIX_GROUP}"

    # --- groups ---

    def create_group(self) -> str:
        name = self._name("team")
        dn = f"cn={name},{GROUPS}"
        pool = sorted(self.users()) + sorted(self.groups())
        members = self.rng.sample(pool, k=self.rng.randint(1, 4))
        attrs = {"objectClass": ["groupOfNames"], "cn": name, "member": members}
        if self.rng.random() < 0.5:
            attrs["description"] = f"Team {name}"
        self.conn.add(dn, attributes=attrs)
        return f"create group {dn} with {len(members)} members"

    def delete_group(self) -> str | None:
        groups = self.groups()
        if len(groups) <= MIN_GROUPS:
            return None
        dn = self._pick(groups)
        self.conn.delete(dn)
        self.wait_for_refint(dn)
        return f"delete group {dn}"

    def rename_group(self) -> str:
        dn = self._pick(self.groups())
        new_rdn = f"cn={self._name('renamed')}"
        self.conn.modify_dn(dn, new_rdn, delete_old_dn=True)
        self.wait_for_refint(dn)
        return f"rename group {dn} to {new_rdn}"

    def change_description(self) -> str:
        """The shared group's name, when the mapping names groups by description."""
        groups = self.groups()
        dn = self._pick(groups)
        if groups[dn].get("description") and self.rng.random() < 0.4:
            self.conn.modify(dn, {"description": [(ldap3.MODIFY_DELETE, [])]})
            return f"remove description of {dn}"
        text = f"Team {self._name('d')}"
        self.conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [text])]})
        return f"description of {dn} := {text!r}"

    def operations(self) -> list[tuple[Callable[[], str | None], int]]:
        """Each operation with its weight; adds and deletes balance, so the directory neither empties nor grows."""
        return [
            (self.add_user, 3), (self.delete_user, 3), (self.rename_user, 2), (self.move_user, 3),
            (self.change_display_name, 3), (self.change_uid, 2), (self.toggle_disabled, 3),
            (self.add_member, 4), (self.remove_member, 4), (self.nest_group, 2), (self.unnest_group, 2),
            (self.add_ghost_member, 1), (self.change_posix_member, 2), (self.create_group, 1),
            (self.delete_group, 1), (self.rename_group, 1), (self.change_description, 2),
        ]

    def step(self) -> str:
        """One change that succeeded; operations that do not fit the data now are skipped."""
        operations = self.operations()
        while True:
            operation = self.rng.choices([op for op, _ in operations], [w for _, w in operations])[0]
            done = operation()
            if done is not None:
                return done

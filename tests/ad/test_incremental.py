"""Incremental runs on Active Directory (change tracking ``usn``), against
the real Samba DC: after each real change to the directory, a run that
reads only the changes writes the same bytes as a full read.

The changes are made as the domain's Administrator in an OU of their own
(OU=Churn), removed with everything under it at the end, so the session's
DC holds the test domain again for the other tests.  The sequence is
random but seeded: LDAPSYNC_AD_CHURN_SEED and LDAPSYNC_AD_CHURN_STEPS
replay or lengthen it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ldap3
import pytest
import yaml

from devtools.samba import ADMIN_PASSWORD
from tests.ad.conftest import HOST
from tests.ad.directory import BASE, SYNC_DN, SYNC_PASSWORD
from tests.ldap.conftest import run

CHURN = f"OU=Churn,{BASE}"
PEOPLE = f"OU=People,{CHURN}"  # users.base, with two OUs below it to move between
INSIDE = (f"OU=North,{PEOPLE}", f"OU=South,{PEOPLE}")
ELSEWHERE = f"OU=Elsewhere,{CHURN}"  # outside users.base
TEAMS = f"OU=Teams,{CHURN}"  # groups.base
SEED = int(os.environ.get("LDAPSYNC_AD_CHURN_SEED", "15"))
EXTRA_STEPS = int(os.environ.get("LDAPSYNC_AD_CHURN_STEPS", "6"))
# common names, few enough that a name one user leaves is soon taken by another (and
# one a search filter must escape)
NAMES = ["Ann Lee", "Ben Ito", "Cy Diaz", "Dee Roy", "Eve Kim", "Fay Ng", "Gus Park", "Hal Obi", "Jo (Ops)*"]
NO_LIMITS = {"max_groups_removed_percent": None, "max_members_removed_percent": None,
             "max_public_groups_added": None, "max_public_contacts_gained_percent": None, "refuse_empty": False}
ENABLED, DISABLED = "544", "546"  # a normal account that needs no password, and the same disabled


@dataclass
class Churn:
    """The OU=Churn part of the DC, changed as an administrator would, and
    what it holds (DNs by sAMAccountName and by group name)."""

    conn: ldap3.Connection
    rng: random.Random
    users: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    serial: int = 0
    log: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        assert self.conn.result["result"] == 0, f"{what}: {self.conn.result}"
        self.log.append(what)

    def free_dn(self, ou: str) -> str:
        taken = set(self.users.values())
        return next(dn for name in self.rng.sample(NAMES, len(NAMES)) if (dn := f"CN={name},{ou}") not in taken)

    def add_user(self, ou: str | None = None) -> None:
        self.serial += 1
        sam = f"churn{self.serial:02d}"
        dn = self.free_dn(ou or self.rng.choice(INSIDE))
        self.conn.add(dn, "user", {"sAMAccountName": sam, "displayName": f"Churn {self.serial}",
                                   "userAccountControl": ENABLED})
        self.ok(f"add {sam} as {dn}")
        self.users[sam] = dn

    def add_group(self) -> None:
        self.serial += 1
        name = f"team{self.serial:02d}"
        dn = f"CN={name},{TEAMS}"
        members = self.rng.sample(sorted(self.users.values()), min(2, len(self.users)))
        self.conn.add(dn, "group", {"sAMAccountName": name, **({"member": members} if members else {})})
        self.ok(f"add group {name} with {members}")
        self.groups[name] = dn

    def step(self, kind: str) -> None:
        getattr(self, f"_{kind}")()

    # the kinds of change, each a method (step())
    def _delete_user(self) -> None:
        sam = self.rng.choice(sorted(self.users))
        self.conn.delete(self.users.pop(sam))
        self.ok(f"delete {sam}")

    def _rename_user(self) -> str:
        """Renames a user in place; returns the DN it had."""
        sam = self.rng.choice(sorted(self.users))
        old = self.users[sam]
        new = self.free_dn(old.split(",", 1)[1])
        self.conn.modify_dn(old, new.split(",", 1)[0])
        self.ok(f"rename {old} to {new}")
        self.users[sam] = new
        return old

    def _move_user(self, to: tuple[str, ...] = INSIDE) -> None:
        sam = self.rng.choice(sorted(self.users))
        old = self.users[sam]
        ou = self.rng.choice([o for o in to if o != old.split(",", 1)[1]])
        new = self.free_dn(ou)
        self.conn.modify_dn(old, new.split(",", 1)[0], new_superior=ou)
        self.ok(f"move {old} to {new}")
        self.users[sam] = new

    def _move_user_out_or_back(self) -> None:
        self._move_user((*INSIDE, ELSEWHERE))

    def _take_a_freed_name(self) -> None:
        """A new user under the DN another had before the last run."""
        self._add_at(self._rename_user())

    def _recreate_user(self) -> None:
        """An account deleted and made again under the same DN: the groups
        that held the old one do not hold the new one."""
        sam = self.rng.choice(sorted(self.users))
        dn = self.users.pop(sam)
        self.conn.delete(dn)
        self.ok(f"delete {sam}")
        self._add_at(dn)

    def _add_at(self, dn: str) -> None:
        """A new enabled user at ``dn``, a DN another entry had."""
        self.serial += 1
        sam = f"churn{self.serial:02d}"
        self.conn.add(dn, "user", {"sAMAccountName": sam, "displayName": f"Churn {self.serial}",
                                   "userAccountControl": ENABLED})
        self.ok(f"add {sam} as {dn}")
        self.users[sam] = dn

    def _display_name(self) -> None:
        sam = self.rng.choice(sorted(self.users))
        self.conn.modify(self.users[sam], {"displayName": [(ldap3.MODIFY_REPLACE, [f"{sam} {self.rng.random():.4f}"])]})
        self.ok(f"displayName of {sam}")

    def _disable_or_enable(self) -> None:
        sam = self.rng.choice(sorted(self.users))
        flag = self.rng.choice([ENABLED, DISABLED])
        self.conn.modify(self.users[sam], {"userAccountControl": [(ldap3.MODIFY_REPLACE, [flag])]})
        self.ok(f"userAccountControl of {sam} to {flag}")

    def _add_member(self) -> None:
        group = self.rng.choice(sorted(self.groups))
        candidates = sorted({*self.users.values(), *self.groups.values()} - {self.groups[group]} - self._members(group))
        if candidates:
            member = self.rng.choice(candidates)
            self.conn.modify(self.groups[group], {"member": [(ldap3.MODIFY_ADD, [member])]})
            self.ok(f"add {member} to {group}")

    def _remove_member(self) -> None:
        group = self.rng.choice(sorted(self.groups))
        members = sorted(self._members(group))
        if members:
            member = self.rng.choice(members)
            self.conn.modify(self.groups[group], {"member": [(ldap3.MODIFY_DELETE, [member])]})
            self.ok(f"remove {member} from {group}")

    def _nest_group(self) -> None:
        inner, outer = self.rng.sample(sorted(self.groups), 2)
        if self.groups[inner] not in self._members(outer):
            self.conn.modify(self.groups[outer], {"member": [(ldap3.MODIFY_ADD, [self.groups[inner]])]})
            self.ok(f"nest {inner} in {outer}")

    def _rename_group(self) -> None:
        name = self.rng.choice(sorted(self.groups))
        self.serial += 1
        new = f"team{self.serial:02d}"
        self.conn.modify_dn(self.groups[name], f"CN={new}")
        self.ok(f"rename group {name} to {new}")
        self.groups[new] = f"CN={new},{TEAMS}"
        del self.groups[name]

    def _delete_group(self) -> None:
        name = self.rng.choice(sorted(self.groups))
        self.conn.delete(self.groups.pop(name))
        self.ok(f"delete group {name}")
        self.add_group()  # keep a few groups to change

    def _add_user(self) -> None:
        self.add_user()

    def _members(self, group: str) -> set[str]:
        self.conn.search(self.groups[group], "(objectClass=*)", ldap3.BASE, attributes=["member"])
        return set(self.conn.response[0]["attributes"].get("member", []))


KINDS = ["add_user", "delete_user", "rename_user", "move_user", "move_user_out_or_back", "take_a_freed_name",
         "recreate_user", "display_name", "disable_or_enable", "add_member", "remove_member", "nest_group",
         "rename_group", "delete_group"]


def _tree_delete(conn: ldap3.Connection, dn: str) -> None:
    conn.search(dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
    # the deepest first: a DN with more RDNs is below one with fewer
    for found in sorted((e["dn"] for e in conn.response if e["type"] == "searchResEntry"),
                        key=lambda d: -d.count("=")):
        conn.delete(found)


@pytest.fixture
def churn(samba) -> Iterator[Churn]:
    """OU=Churn with a few users and groups; gone again afterwards."""
    conn = ldap3.Connection(ldap3.Server(samba.url, get_info=ldap3.NONE), user=f"CN=Administrator,CN=Users,{BASE}",
                            password=ADMIN_PASSWORD, auto_bind=True, raise_exceptions=False)
    state = Churn(conn, random.Random(SEED))
    try:
        for ou in (CHURN, PEOPLE, *INSIDE, ELSEWHERE, TEAMS):
            conn.add(ou, "organizationalUnit")
            state.ok(f"add {ou}")
        for _ in range(6):
            state.add_user()
        for _ in range(3):
            state.add_group()
        yield state
    finally:
        _tree_delete(conn, CHURN)
        conn.unbind()


@pytest.fixture
def configs(tmp_path, samba, backend) -> Callable[..., tuple[Path, Path]]:
    """Config A (state.path: incremental runs) and B (no state), the same
    searches of the same DC, each its own output file."""

    def make(**groups) -> tuple[Path, Path]:
        secret = tmp_path / "bind.password"
        secret.write_text(SYNC_PASSWORD + "\n")
        secret.chmod(0o600)
        paths = []
        for name in ("a", "b"):
            data = {
                "flavour": "ad",
                "ldap": {"servers": [samba.url], "bind_dn": SYNC_DN, "bind_password_file": str(secret),
                         "backend": backend, "change_tracking": "auto"},
                "users": {"base": PEOPLE},
                "groups": {"base": TEAMS, **groups},
                "mapping": {"jid": "{{ sAMAccountName | lower }}@example.test"},
                "outputs": [{"path": str(tmp_path / f"{name}.txt"), "host": HOST, "safety": NO_LIMITS}],
            }
            if name == "a":
                data["state"] = {"path": str(tmp_path / "a-state" / "state.json")}
                (tmp_path / "a-state").mkdir(mode=0o700)
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(data))
            path.chmod(0o600)
            paths.append(path)
        return paths[0], paths[1]

    return make


def _run_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "run", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_each_change_read_incrementally_gives_the_bytes_of_a_full_read(capsys, churn, configs, tmp_path):
    a, b = configs()
    first = _run_json(capsys, "-c", a)
    assert first["read"]["kind"] == "full" and first["read"]["method"] == "usn"
    rng = random.Random(SEED)
    steps = rng.sample(KINDS, len(KINDS)) + [rng.choice(KINDS) for _ in range(EXTRA_STEPS)]
    kinds = set()
    for n, kind in enumerate(steps):
        churn.step(kind)
        report = _run_json(capsys, "-c", a)
        _run_json(capsys, "-c", b, "--full")
        replay = f"LDAPSYNC_AD_CHURN_SEED={SEED}, step {n} ({kind}); changes so far:\n" + "\n".join(churn.log)
        assert report["read"]["method"] == "usn", replay
        assert report["read"]["kind"] in ("incremental", "unchanged"), (report["read"], replay)
        kinds.add(report["read"]["kind"])
        assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes(), replay
    assert "incremental" in kinds
    # nothing changed since: the run ends after the probe
    again = _run_json(capsys, "-c", a)
    assert again["read"]["kind"] == "unchanged" and again["read"]["entries"] <= 2


def test_with_memberof_a_change_reads_everything(capsys, churn, configs):
    """memberOf is a backlink: the DC changes it without a new uSNChanged
    on the user."""
    a, _ = configs(membership="memberOf")
    assert _run_json(capsys, "-c", a)["read"]["kind"] == "full"
    churn.step("add_member")
    report = _run_json(capsys, "-c", a)
    assert report["read"]["kind"] == "full" and "memberOf" in report["read"]["reason"]


def test_a_snapshot_of_another_dc_reads_everything(capsys, churn, configs, tmp_path):
    """USNs are one DC's: a snapshot naming another invocationId (another
    DC, or this one restored from a backup) is not patched."""
    a, _ = configs()
    assert _run_json(capsys, "-c", a)["read"]["kind"] == "full"
    snapshot = tmp_path / "a-state" / "state.json.snapshot"
    magic, header, rest = snapshot.read_bytes().split(b"\n", 2)
    fields = json.loads(header)
    fields["marker"]["probe"]["invocation"] = "00000000-0000-0000-0000-000000000000"
    snapshot.write_bytes(b"\n".join((magic, json.dumps(fields).encode(), rest)))
    churn.step("display_name")
    report = _run_json(capsys, "-c", a)
    assert report["read"]["kind"] == "full" and "invocationId" in report["read"]["reason"]
    assert _run_json(capsys, "-c", a)["read"]["kind"] == "unchanged"

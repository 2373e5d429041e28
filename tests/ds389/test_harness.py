"""The 389 Directory Server harness (devtools/ds389.py) gives the server the
tests assume: on 127.0.0.1 only, the LDIF added online, bound users reading
everything but passwords, and the plugins asked for turned on."""

from __future__ import annotations

import os
import socket

import ldap3
import pytest

from devtools import ds389 as harness
from tests.conftest import need

BASE = harness.BASE
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ALICE = f"uid=alice,{PEOPLE}"
ALICE_PASSWORD = "alice-secret"
CONTENT_SYNC_OID = "1.3.6.1.4.1.4203.1.9.1.1"

LDIF = f"""\
dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: {GROUPS}
objectClass: organizationalUnit
ou: groups

dn: {ALICE}
objectClass: inetOrgPerson
uid: alice
cn: Alice Archer
sn: Archer
userPassword: {ALICE_PASSWORD}

dn: uid=bob,{PEOPLE}
objectClass: inetOrgPerson
uid: bob
cn: Bob Baker
sn: Baker

dn: uid=dave,{PEOPLE}
objectClass: inetOrgPerson
uid: dave
cn: Dave Dyer
sn: Dyer

dn: cn=staff,{GROUPS}
objectClass: groupOfNames
cn: staff
member: {ALICE}
member: uid=bob,{PEOPLE}
member: uid=dave,{PEOPLE}

dn: cn=ops,{GROUPS}
objectClass: groupOfUniqueNames
cn: ops
uniqueMember: uid=bob,{PEOPLE}
uniqueMember: uid=dave,{PEOPLE}
"""


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    if os.geteuid() != 0:
        # skipped even with LDAPSYNC_REQUIRE_REAL=1: CI runs as root, where a missing 389-ds fails
        pytest.skip("creating a 389-ds instance needs root")
    need(harness.missing())
    server = harness.DS389(tmp_path_factory.mktemp("ds389"), extra_ldif_text=LDIF,
                           plugins=("memberof", "refint", "contentsync"))
    server.start()
    yield server
    server.stop()


def connect(url: str, dn: str | None = None, password: str | None = None) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), dn, password, auto_bind=True)


def read(conn: ldap3.Connection, dn: str, *attributes: str) -> dict[str, list[str]]:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes) or ["*"])
    assert conn.response, f"{dn} not readable: {conn.result}"
    return {k.lower(): [v.decode() for v in vs] for k, vs in conn.response[0]["raw_attributes"].items()}


def test_admin_reads_the_loaded_users_and_groups(ds):
    conn = connect(ds.url, ds.admin_dn, ds.admin_password)
    conn.search(BASE, "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                attributes=["cn"])
    names = {e["dn"].lower() for e in conn.response}
    assert {ALICE, f"cn=ops,{GROUPS}"} <= names
    assert read(conn, f"cn=ops,{GROUPS}", "uniqueMember")["uniquemember"]


def test_listens_on_127_0_0_1_only(ds):
    socket.create_connection(("127.0.0.1", ds.port), timeout=2).close()
    # 127.0.0.2 is loopback too: a server on every address would accept here.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", ds.port), timeout=2).close()


def test_a_bound_user_reads_entries_but_no_passwords_and_anonymous_reads_none(ds):
    user = connect(ds.url, ALICE, ALICE_PASSWORD)
    alice = read(user, ALICE, "*", "entryUUID", "nsUniqueId", "modifyTimestamp")
    assert alice["uid"] == ["alice"]
    assert "userpassword" not in alice
    # Entries added online carry both identifiers and the timestamps.
    assert alice["entryuuid"] and alice["nsuniqueid"] and alice["modifytimestamp"]
    anonymous = connect(ds.url)
    anonymous.search(PEOPLE, "(uid=*)", attributes=["uid"])
    assert anonymous.response == []


def test_the_server_time_is_readable_by_a_bound_user(ds):
    user = connect(ds.url, ALICE, ALICE_PASSWORD)
    assert read(user, "cn=monitor", "currentTime")["currenttime"][0].endswith("Z")


def test_the_plugins_asked_for_are_on(ds):
    admin = connect(ds.url, ds.admin_dn, ds.admin_password)
    assert read(admin, ALICE, "memberOf")["memberof"] == [f"cn=staff,{GROUPS}"]
    assert CONTENT_SYNC_OID in read(admin, "", "supportedControl")["supportedcontrol"]
    assert "cn=changelog" in read(admin, "", "namingContexts")["namingcontexts"]
    # Referential integrity: deleting a user rewrites the groups naming him, at once.
    admin.delete(f"uid=dave,{PEOPLE}")
    assert f"uid=dave,{PEOPLE}" not in [m.lower() for m in read(admin, f"cn=staff,{GROUPS}", "member")["member"]]
    assert read(admin, f"cn=ops,{GROUPS}", "uniqueMember")["uniquemember"] == [f"uid=bob,{PEOPLE}"]


def test_a_restart_keeps_the_data(ds):
    ds.restart()
    assert read(connect(ds.url, ALICE, ALICE_PASSWORD), ALICE, "uid")["uid"] == ["alice"]


def test_edit_dse_replaces_and_adds_values_in_folded_entries():
    dse = ("dn: cn=config\nnsslapd-port: 0\nnsslapd-errorlog: /a/very/long/pa\n th\n\n"
           "dn: cn=MemberOf Plugin,cn=plugins,cn=config\nnsslapd-pluginEnabled: off\n")
    edited = harness.edit_dse(dse, "cn=memberof plugin,cn=plugins,cn=config",
                              replace={"nsslapd-pluginEnabled": "on"}, add={"memberOfAttr": "memberOf"})
    edited = harness.edit_dse(edited, "cn=config", replace={"nsslapd-port": "3389"})
    assert edited == ("dn: cn=config\nnsslapd-errorlog: /a/very/long/path\nnsslapd-port: 3389\n\n"
                      "dn: cn=MemberOf Plugin,cn=plugins,cn=config\nnsslapd-pluginEnabled: on\n"
                      "memberOfAttr: memberOf\n")
    with pytest.raises(KeyError):
        harness.edit_dse(dse, "cn=nothing", replace={"a": "b"})


def test_prefixed_defaults_move_every_instance_path_under_the_directory(tmp_path):
    system = "[slapd]\nsbin_dir = /usr/sbin\nwith_systemd = 1\nconfig_dir = /etc/dirsrv/slapd-{instance_name}\n" \
             "db_dir = /var/lib/dirsrv/slapd-{instance_name}/db\nldapi = /run/slapd-{instance_name}.socket\n"
    moved = harness.prefixed_defaults(system, tmp_path)
    assert "sbin_dir = /usr/sbin" in moved
    assert "with_systemd = 0" in moved
    for key in ("config_dir", "db_dir", "ldapi"):
        assert f"{key} = {tmp_path}/" in moved

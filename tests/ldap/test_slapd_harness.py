"""The slapd harness and the test directory behave as the LDAP tests assume."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import ldap3
import pytest

from devtools.slapd import Slapd
from tests.ldap.directory import (
    BASE,
    BULK,
    BULK_USERS,
    GROUPS,
    LDIF,
    LIMITED_DN,
    LIMITED_PASSWORD,
    PEOPLE,
    SERVICES,
    SYNC_DN,
    SYNC_PASSWORD,
    USERS,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO_LDIF = ROOT / "examples" / "demo" / "directory.ldif"
BITAND = "1.2.840.113556.1.4.803"


def connect(url: str, dn: str | None = None, password: str | None = None) -> ldap3.Connection:
    """check_names=False sends base DNs to slapd as written: ldap3's own DN
    parser rejects member values such as "uid=bob, ou=people, ..." that slapd accepts."""
    return ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), dn, password, auto_bind=True, check_names=False)


def paged_dns(conn: ldap3.Connection, base: str, search_filter: str, attributes=("uid",)) -> list[str]:
    """All DNs of a paged search. ldap3 never raises sizeLimitExceeded, even with
    raise_exceptions=True: the caller must look at conn.result afterwards."""
    return [
        e["dn"] for e in conn.extend.standard.paged_search(
            base, search_filter, attributes=list(attributes), paged_size=100, generator=True,
        )
        if e["type"] == "searchResEntry"
    ]


def entry(conn: ldap3.Connection, dn: str, attributes=("*",)) -> dict | None:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes))
    return conn.response[0] if conn.result["result"] == 0 else None


def values(conn: ldap3.Connection, dn: str, attribute: str) -> list[str]:
    found = entry(conn, dn, [attribute])
    return [v.decode("utf-8") for v in found["raw_attributes"].get(attribute, [])] if found else []


def test_sync_account_pages_through_the_whole_tree(slapd):
    conn = connect(slapd.url, SYNC_DN, SYNC_PASSWORD)
    mark = slapd.mark()
    dns = paged_dns(conn, BASE, "(objectClass=inetOrgPerson)")
    assert conn.result["result"] == 0, conn.result
    assert len(dns) == len(set(dns)) == USERS + BULK_USERS
    # 610 entries in pages of 100: seven search operations.
    assert slapd.search_count(mark) == 7


@pytest.mark.parametrize("paged", [False, True], ids=["plain", "paged"])
def test_limited_account_hits_the_default_size_limit(slapd, paged):
    conn = connect(slapd.url, LIMITED_DN, LIMITED_PASSWORD)
    if paged:
        dns = paged_dns(conn, BULK, "(objectClass=inetOrgPerson)")
    else:
        conn.search(BULK, "(objectClass=inetOrgPerson)", attributes=["uid"])
        dns = [e["dn"] for e in conn.response]
    assert conn.result["result"] == 4, conn.result  # sizeLimitExceeded
    assert len(dns) == 500


def test_anonymous_reads_people_but_no_password(slapd):
    conn = connect(slapd.url)
    conn.search(PEOPLE, "(objectClass=inetOrgPerson)", ldap3.LEVEL, attributes=["uid", "displayName", "mail"])
    assert conn.result["result"] == 0
    assert sorted(e["attributes"]["uid"][0] for e in conn.response) == [
        "Grace", "alice", "bob", "carol", "dave", "erin", "frank", "jmueller", "jsmith",
    ]
    assert values(conn, f"uid=jmueller,{PEOPLE}", "displayName") == ["Jürgen Müller"]
    sync = connect(slapd.url, SYNC_DN, SYNC_PASSWORD)
    for c in (conn, sync):
        c.search(SERVICES, "(objectClass=simpleSecurityObject)", attributes=["userPassword"])
        assert [e["raw_attributes"]["userPassword"] for e in c.response] == [[], []]


def test_service_accounts_authenticate_only_with_their_password(slapd):
    connect(slapd.url, LIMITED_DN, LIMITED_PASSWORD)
    with pytest.raises(ldap3.core.exceptions.LDAPBindError):
        connect(slapd.url, SYNC_DN, "wrong")


def test_member_of_is_on_alice_when_asked_for(slapd):
    conn = connect(slapd.url)
    alice = f"uid=alice,{PEOPLE}"
    assert sorted(values(conn, alice, "memberOf")) == sorted(
        f"cn={cn},{GROUPS}" for cn in ("engineering", "R&D\\2C Europe", "ghosts", "all-staff", "disabled-mix")
    )
    # memberOf is operational: "*" leaves it out.
    assert "memberOf" not in entry(conn, alice)["raw_attributes"]


def test_member_of_matches_the_groups(slapd):
    """The memberOf values written into the LDIF are what the overlay would keep:
    one per direct groupOfNames membership of an existing entry."""
    assert member_of_pairs(slapd.url) == expected_member_of(slapd.url)


def member_of_pairs(url: str) -> set[tuple[str, str]]:
    conn = connect(url)
    pairs = set()
    for e in conn.extend.standard.paged_search(BASE, "(memberOf=*)", attributes=["memberOf"], generator=False):
        pairs.update((e["dn"], canonical(conn, g)) for g in e["attributes"]["memberOf"])
    return pairs


def expected_member_of(url: str) -> set[tuple[str, str]]:
    conn = connect(url)
    pairs = set()
    for g in conn.extend.standard.paged_search(BASE, "(objectClass=groupOfNames)", attributes=["member"],
                                               generator=False):
        for member in g["attributes"]["member"]:
            if (dn := canonical(conn, member)) is not None:
                pairs.add((dn, g["dn"]))
    return pairs


def canonical(conn: ldap3.Connection, dn: str) -> str | None:
    """slapd's own spelling of a DN, or None when no such entry exists."""
    found = entry(conn, dn, ["1.1"])
    return found["dn"] if found else None


def test_escaped_group_dn_and_odd_member_spellings_come_back(slapd):
    conn = connect(slapd.url)
    conn.search(GROUPS, "(description=R&D, Europe)", attributes=["member"])
    [group] = conn.response
    assert group["dn"] == f"cn=R&D\\2C Europe,{GROUPS}"
    assert group["attributes"]["member"] == [
        "UID=alice,OU=People,DC=Example,DC=COM",
        "uid=bob, ou=people, dc=example, dc=com",
        f"cn=Smith\\, John,{PEOPLE}",
    ]
    assert values(conn, f"cn=sales,{GROUPS}", "uniqueMember")[0] == f"uid=carol,{PEOPLE}#'0101'B"


def test_disabled_account_filters(slapd):
    conn = connect(slapd.url)

    def uids(search_filter: str) -> list[str]:
        conn.search(BASE, search_filter, attributes=["uid"])
        assert conn.result["result"] == 0, conn.result
        return sorted(e["attributes"]["uid"][0] for e in conn.response)

    # carol has userAccountControl 66048 (bit 2 clear) and nsAccountLock FALSE.
    assert uids(f"(userAccountControl:{BITAND}:=2)") == ["erin"]
    assert uids("(nsAccountLock=true)") == ["dave"]
    assert uids("(shadowExpire=1)") == ["frank"]
    # nis.schema gives shadowExpire no ORDERING rule: "<=" is Undefined, matches nothing.
    assert uids("(shadowExpire<=19000)") == []


def test_search_count_counts_search_operations(slapd):
    conn = connect(slapd.url)
    mark = slapd.mark()
    for _ in range(3):
        conn.search(PEOPLE, "(uid=alice)", attributes=["uid"])
    assert slapd.search_count(mark) == 3


def test_online_changes_run_the_overlay_and_survive_restart(tmp_path):
    with Slapd(tmp_path / "own", [LDIF]) as server:
        admin = server.admin_connection()
        admin.add(f"cn=new,{GROUPS}", ["groupOfNames"], {"member": [f"uid=bob,{PEOPLE}"]})
        mark = server.mark()
        server.restart()
        conn = connect(server.url)
        assert f"cn=new,{GROUPS}" in values(conn, f"uid=bob,{PEOPLE}", "memberOf")
        assert server.search_count(mark) == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_broken_ldif_is_reported(tmp_path):
    broken = tmp_path / "broken.ldif"
    broken.write_text(f"dn: uid=x,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: x\ncn: x\n")
    with pytest.raises(RuntimeError, match="requires attribute 'sn'"):
        Slapd(tmp_path / "own", [LDIF, broken]).start()


def test_serve_command_runs_the_demo_directory_until_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.slapd", "serve", "--dir", str(tmp_path / "demo"), "--ldif", str(DEMO_LDIF)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("ldap://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        conn = connect(url, SYNC_DN, SYNC_PASSWORD)
        conn.search(BASE, "(objectClass=inetOrgPerson)", attributes=["uid", "nsAccountLock"])
        people = conn.response
        assert 20 <= len(people) <= 30
        assert [e["attributes"]["uid"][0] for e in people if e["attributes"]["nsAccountLock"] == ["TRUE"]] != []
        assert values(conn, f"cn=all-staff,{GROUPS}", "description") == ["All Staff"]
        assert member_of_pairs(url) == expected_member_of(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read()

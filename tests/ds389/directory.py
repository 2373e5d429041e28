"""What the tests against 389-ds load, and putting it back between tests.

Two data sets share the one server of a session (creating an instance takes
about 5 s, reloading its data about 1 s):

- ``site_ldif``: a small 389-ds/FreeIPA-style site whose groups file the
  end-to-end test spells out: users under ou=people (more than a page),
  groupOfNames and groupOfUniqueNames groups, a nested group, an account
  locked with nsAccountLock.
- ``walk_ldif``: the directory tests/ldap/mutations.py changes at random
  (tests/ldap/syncprov_directory.py), made loadable online on 389-ds.

The sync account may read at most SIZE_LIMIT entries per search (nsSizeLimit),
fewer than either data set holds: a search that is not paged fails.
"""

from __future__ import annotations

import ldap3
import ldap3.core.exceptions

from devtools import ds389 as harness
from tests.ldap import syncprov_directory

BASE = harness.BASE
SERVICES = f"ou=services,{BASE}"
SYNC_DN = f"cn=ldapsync,{SERVICES}"
SYNC_PASSWORD = "sync-secret"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
SIZE_LIMIT = 30
PAGE_SIZE = 20
SITE_USERS = 45  # more than SIZE_LIMIT and two pages
# The subtrees each test may change; everything under them is reloaded.
TREES = (PEOPLE, f"ou=elsewhere,{BASE}", GROUPS)


def sync_account() -> str:
    return (f"dn: {SERVICES}\nobjectClass: organizationalUnit\nou: services\n\n"
            f"dn: {SYNC_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: ldapsync\n"
            f"userPassword: {SYNC_PASSWORD}\nnsSizeLimit: {SIZE_LIMIT}\n")


def site_user(n: int) -> str:
    return f"uid=user{n:02d},{PEOPLE}"


def site_ldif() -> str:
    """users user01..user45 (user07 locked); staff (groupOfNames: 01-05, 07),
    ops (groupOfUniqueNames: 04-06, one value with the #'...'B suffix),
    everyone (groupOfNames: staff, ops and user40 nested), and a group of
    nobody ldapsync syncs (only the locked user)."""
    parts = [f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
             f"dn: ou=elsewhere,{BASE}\nobjectClass: organizationalUnit\nou: elsewhere\n",
             f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n"]
    for n in range(1, SITE_USERS + 1):
        lines = [f"dn: {site_user(n)}", "objectClass: inetOrgPerson", f"uid: user{n:02d}", f"cn: User {n}",
                 f"sn: Number{n}"]
        if n % 2:
            lines.append(f"displayName: Person Number {n}")
        if n == 7:
            lines.append("nsAccountLock: TRUE")
        parts.append("\n".join(lines) + "\n")
    parts.append("\n".join([f"dn: cn=staff,{GROUPS}", "objectClass: groupOfNames", "cn: staff",
                            "description: Staff", *(f"member: {site_user(n)}" for n in (1, 2, 3, 4, 5, 7))]) + "\n")
    parts.append("\n".join([f"dn: cn=ops,{GROUPS}", "objectClass: groupOfUniqueNames", "cn: ops",
                            f"uniqueMember: {site_user(4)}", f"uniqueMember: {site_user(5)}#'0101'B",
                            f"uniqueMember: {site_user(6)}"]) + "\n")
    parts.append("\n".join([f"dn: cn=everyone,{GROUPS}", "objectClass: groupOfNames", "cn: everyone",
                            "description: Everyone", f"member: cn=staff,{GROUPS}", f"member: cn=ops,{GROUPS}",
                            f"member: {site_user(40)}"]) + "\n")
    parts.append("\n".join([f"dn: cn=locked,{GROUPS}", "objectClass: groupOfNames", "cn: locked",
                            f"member: {site_user(7)}"]) + "\n")
    return "\n".join(parts)


def walk_ldif() -> str:
    """tests/ldap/syncprov_directory.py's directory without what 389-ds
    refuses online or keeps itself: the suffix entry (dscreate made it), the
    services and sync account (loaded once), memberOf values (the memberOf
    plugin writes them); its posixGroup, auxiliary in 389-ds's schema, gets
    a structural class."""
    blocks = []
    for block in syncprov_directory.ldif().split("\n\n"):
        dn = block.split("\n", 1)[0].removeprefix("dn: ").lower()
        if not block.strip() or dn == BASE or dn.endswith(SERVICES.lower()):
            continue
        lines = [ln for ln in block.strip("\n").split("\n") if not ln.lower().startswith("memberof:")]
        if "objectClass: posixGroup" in lines:
            lines.insert(lines.index("objectClass: posixGroup"), "objectClass: groupOfUniqueNames")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def clear(conn: ldap3.Connection) -> None:
    """Delete everything under TREES, and the trees: leaves first."""
    dns: list[str] = []
    for tree in TREES:
        try:
            conn.search(tree, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
        except ldap3.core.exceptions.LDAPNoSuchObjectResult:
            continue
        dns += [e["dn"] for e in conn.response if e["type"] == "searchResEntry"]
    for dn in sorted(dns, key=lambda d: d.count(","), reverse=True):
        conn.delete(dn)

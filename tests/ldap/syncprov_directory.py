"""The small directory the incremental-sync tests change at will, on a slapd
of its own with the syncprov overlay (the shared one must stay as loaded).

    ou=people          users.base: users directly in it and in two sub-OUs
      ou=staff
      ou=interns
    ou=elsewhere       users outside users.base (members all the same)
    ou=groups          groupOfNames (some nested, one cycle) and a posixGroup

Users whose employeeType is "disabled" are left out by USERS_FILTER; some
start disabled. slapadd runs no overlays, so the LDIF spells out the memberOf
values the memberof overlay would write. Every entry says it was written long
ago (WRITTEN), so that a search by modifyTimestamp finds only what the tests
changed, not everything loaded a moment ago.
"""

from __future__ import annotations

from devtools.slapd import BASE, SYNC_DN

PEOPLE = f"ou=people,{BASE}"
USER_OUS = (PEOPLE, f"ou=staff,{PEOPLE}", f"ou=interns,{PEOPLE}")
ELSEWHERE = f"ou=elsewhere,{BASE}"
GROUPS = f"ou=groups,{BASE}"
USERS_FILTER = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"
POSIX_GROUP = f"cn=unix,{GROUPS}"
USERS = 36
GROUP_COUNT = 12
WRITTEN = "20200101000000Z"
# The sync account's password hash (sync-secret), as in data/directory.ldif.
SYNC_PASSWORD_HASH = "{SSHA}qGEI9Y3QzhzGCAHQZ3zhot9y9ixB9mhO"


def user_dn(n: int) -> str:
    """Users 1..USERS, spread over the three OUs of users.base and ou=elsewhere;
    every fifth is named by cn, so that its uid can change without a rename."""
    ou = (*USER_OUS, ELSEWHERE)[n % 4] if n % 9 else ELSEWHERE
    return f"cn=User {n},{ou}" if n % 5 == 0 else f"uid=user{n:03d},{ou}"


def user_uid(n: int) -> str:
    return f"user{n:03d}"


def group_dn(n: int) -> str:
    return f"cn=group{n:02d},{GROUPS}"


def _members() -> dict[str, list[str]]:
    """Each groupOfNames' member DNs: a few users, nesting, and the cycle
    group01 -> group02 -> group03 -> group01."""
    members: dict[str, list[str]] = {}
    for g in range(1, GROUP_COUNT + 1):
        users = [user_dn(u) for u in range(1, USERS + 1) if (u * 7 + g * 3) % GROUP_COUNT < 3]
        members[group_dn(g)] = users
    for parent, child in ((1, 2), (2, 3), (3, 1), (4, 5), (5, 6), (7, 4)):
        members[group_dn(parent)].append(group_dn(child))
    return members


def user_entry(n: int, dn: str, *, disabled: bool = False, member_of: list[str] = ()) -> str:
    uid = user_uid(n)
    lines = [f"dn: {dn}", "objectClass: inetOrgPerson", f"uid: {uid}", f"cn: User {n}", f"sn: Number{n}",
             f"displayName: User Number {n}", f"mail: {uid}@example.com"]
    if disabled:
        lines.append("employeeType: disabled")
    lines += [f"memberOf: {g}" for g in member_of]
    return "\n".join(lines) + "\n"


def ldif() -> str:
    """The whole directory as LDIF, for slapadd."""
    parts = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Corp\n",
        f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SYNC_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: ldapsync\n"
        f"userPassword: {SYNC_PASSWORD_HASH}\n",
    ]
    for dn in (PEOPLE, *USER_OUS[1:], ELSEWHERE, GROUPS):
        parts.append(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {dn.split(',')[0].split('=')[1]}\n")
    members = _members()
    member_of: dict[str, list[str]] = {}
    for group, dns in members.items():
        for dn in dns:
            member_of.setdefault(dn, []).append(group)
    for n in range(1, USERS + 1):
        dn = user_dn(n)
        parts.append(user_entry(n, dn, disabled=n % 11 == 0, member_of=member_of.get(dn, [])))
    for group, dns in members.items():
        name = group.split(",")[0].split("=")[1]
        lines = [f"dn: {group}", "objectClass: groupOfNames", f"cn: {name}"]
        if int(name[-2:]) % 2:
            lines.append(f"description: Team {name[-2:]}")
        lines += [f"member: {dn}" for dn in dns]
        lines += [f"memberOf: {g}" for g in member_of.get(group, [])]
        parts.append("\n".join(lines) + "\n")
    uids = [user_uid(n) for n in range(1, USERS + 1, 4)] + ["nosuchuser"]
    parts.append("\n".join([f"dn: {POSIX_GROUP}", "objectClass: posixGroup", "cn: unix", "gidNumber: 5000",
                            *(f"memberUid: {u}" for u in uids)]) + "\n")
    written = f"createTimestamp: {WRITTEN}\nmodifyTimestamp: {WRITTEN}\n"
    return "\n".join(part + written for part in parts)

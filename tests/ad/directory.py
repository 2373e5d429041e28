"""The Samba AD test domain: what devtools.samba seeds, and its names.

    OU=Corp
      OU=Staff     alice, bob, carol, Grace (sAMAccountName in capitals), erin;
                   dave disabled (userAccountControl 514)
      OU=Bulk      bulk0001 .. bulk2000
      OU=Services  ldapsync, the bind account (a person too: in no group)
      OU=Groups
        engineering       alice, bob, platform          nesting cycle:
        platform          carol, engineering            each holds the other
        support           support-l2                    three levels down:
        support-l2        support-l3
        support-l3        Grace
        sales             carol, dave (disabled)
        R&D, Europe       alice, Ops (Berlin)*          a comma, & and
        Ops (Berlin)*     erin                          parentheses in DNs
        big               alice and the 2,000 bulk users (more than AD's 1,500 a range)

Every user has userPrincipalName <sAMAccountName>@example.test and mail
<lowercase sAMAccountName>@mail.example.test, so a JID shows where it came from.
(*) the star is part of the name: the in-chain filter must escape it.
"""

from __future__ import annotations

from devtools.samba import BASE, SYNC_DN, SYNC_PASSWORD, group, ou, user  # noqa: F401

CORP = f"OU=Corp,{BASE}"
STAFF = f"OU=Staff,{CORP}"
BULK = f"OU=Bulk,{CORP}"
SERVICES = f"OU=Services,{CORP}"
GROUPS = f"OU=Groups,{CORP}"
BULK_USERS = 2000
STAFF_NAMES = {"alice": "Alice Liddell", "bob": "Bob Builder", "carol": "Carol Danvers", "Grace": "Grace Hopper",
               "erin": "Erin Brockovich"}
DISABLED = "dave"


def g(cn: str) -> str:
    return f"CN={cn},{GROUPS}"


def s(sam: str) -> str:
    return f"CN={sam},{STAFF}"


def entries() -> list[dict]:
    out = [ou(CORP), ou(STAFF), ou(BULK), ou(SERVICES), ou(GROUPS), user("ldapsync", SERVICES)]
    for sam, display in STAFF_NAMES.items():
        out.append(user(sam, STAFF, display=display, mail=f"{sam.lower()}@mail.example.test"))
    out.append(user(DISABLED, STAFF, display="Dave Disabled", mail="dave@mail.example.test", disabled=True))
    bulk = [f"bulk{i:04d}" for i in range(1, BULK_USERS + 1)]
    out += [user(sam, BULK, display=f"Bulk User {sam[4:]}", mail=f"{sam}@mail.example.test") for sam in bulk]
    # a group can hold a group only once that exists: the cycle is closed by its second member
    out += [
        group(g("platform"), [s("carol")]),
        group(g("engineering"), [s("alice"), s("bob"), g("platform")]),
        group(g("support-l3"), [s("Grace")]),
        group(g("support-l2"), [g("support-l3")]),
        group(g("support"), [g("support-l2")]),
        group(g("sales"), [s("carol"), s(DISABLED)]),
        group(g(r"Ops (Berlin)*"), [s("erin")]),
        group(g(r"R&D\, Europe"), [s("alice"), g(r"Ops (Berlin)*")]),
        group(g("big"), [s("alice"), *(f"CN={sam},{BULK}" for sam in bulk)]),
    ]
    return out


# Added after the entries: the second member closing the nesting cycle.
CYCLE = (g("platform"), g("engineering"))

"""The in-chain rule's pieces that need no server: the filter and how its
answers replace client-side nesting."""

from __future__ import annotations

from ldapsync.directory import Entry
from ldapsync.directory.in_chain import in_chain_filter
from ldapsync.membership import Memberships, apply_in_chain


def test_the_group_dn_is_escaped():
    assert in_chain_filter("(objectClass=user)", r"CN=R&D (EU) *\,OU=G,DC=x") == (
        r"(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=R&D \28EU\29 \2a\5c,OU=G,DC=x))")


def test_answers_replace_the_users_of_the_groups_asked_about():
    users = {k: Entry(k, {}) for k in ("cn=a", "cn=b", "cn=c")}
    groups = {"cn=g": Entry("CN=g", {}), "cn=h": Entry("CN=h", {})}
    members = Memberships(users, {"cn=b": "disabled"}, groups,
                          direct_users={"cn=g": {"cn=c"}, "cn=h": {"cn=a"}}, subgroups={"cn=g": [], "cn=h": []},
                          members={"cn=g": {"cn=c"}, "cn=h": {"cn=a"}})
    # the server finds a (nested), b (disabled) and someone ldapsync did not read
    apply_in_chain(members, {"cn=g": {"cn=a", "cn=b", "cn=unknown"}, "cn=other": {"cn=a"}})
    assert members.members["cn=g"] == {"cn=a", "cn=c"}  # c: listed directly (memberUid, say)
    assert members.members["cn=h"] == {"cn=a"}  # not asked about: as it was
    assert "cn=other" not in members.members

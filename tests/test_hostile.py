"""Hostile directory data: whatever one entry holds, nobody else's groups or
names change, and what is written still reads back as intended."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.config import parse
from ldapsync.directory import Entry
from ldapsync.groupsfile import parse as parse_file
from ldapsync.groupsfile import render, xml_safe
from ldapsync.mapping import Templates, map_directory, model_for
from ldapsync.membership import resolve

CONFIG = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "ou=people,dc=example,dc=com"}
groups: {base: "ou=groups,dc=example,dc=com", public: ["Everyone"], on_name_collision: merge}
mapping:
  jid: "{{ uid | lower }}@example.com"
  name: "{{ displayName }}"
  group_name: "{{ description or cn }}"
outputs: [{path: /tmp/unused.txt}]
""")
TEMPLATES = Templates(CONFIG.mapping)
PEOPLE = "ou=people,dc=example,dc=com"
GROUPS = "ou=groups,dc=example,dc=com"


def person(uid: str, name: str) -> Entry:
    return Entry(f"uid={uid},{PEOPLE}", {"uid": [uid], "displayname": [name]})


def group(cn: str, members: list[str], description: str | None = None) -> Entry:
    attrs = {"cn": [cn], "member": [f"uid={m},{PEOPLE}" for m in members]}
    if description is not None:
        attrs["description"] = [description]
    return Entry(f"cn={cn},{GROUPS}", attrs)


NORMAL_USERS = [person("alice", "Alice Liddell"), person("bob", "Bob Builder"), person("carol", "Carol Danvers")]


def file_for(users: list[Entry], groups: list[Entry]) -> dict[str, dict[str, str]]:
    members = resolve(users, groups, CONFIG.users, CONFIG.groups)
    mapped = map_directory(CONFIG, TEMPLATES, members)
    text = render(model_for(CONFIG.outputs[0], mapped))
    parsed = parse_file(text)
    assert parsed.diagnostics == ()
    return {g: dict(m) for g, m in parsed.groups.items() if m or g in parsed.declared}


HOSTILE = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["\n[Evil]\nalice@example.com=Owned", "x]\n[+All", "a=b=c", "\r\n", "\x00\x01\x1b",
                     "\ufeff[Team]", "\u2028line", "[", "]", "=", " ", "", "x" * 1_000_000, "\udcff\udcfe",
                     "ALICE", "alice", "bob@example.com", "../../etc/passwd", "{{ 7*7 }}",
                     "\xad"]),  # a soft hyphen: prepares to nothing, leaving "@example.com"
)


@settings(max_examples=300, deadline=None)
@given(uid=HOSTILE, name=HOSTILE, group_name=HOSTILE)
def test_one_hostile_entry_changes_nobody_else(uid, name, group_name):
    base_groups = [group("team", ["alice", "bob"], "Team"), group("everyone", ["alice", "bob", "carol"],
                                                                 "Everyone")]
    baseline = file_for(NORMAL_USERS, base_groups)
    mallory = Entry(f"uid=mallory,{PEOPLE}", {"uid": [uid], "displayname": [name]})
    evil_group = group("evil", ["alice", "mallory"], group_name)
    hostile = file_for([*NORMAL_USERS, mallory],
                       [group("team", ["alice", "bob", "mallory"], "Team"),
                        group("everyone", ["alice", "bob", "carol", "mallory"], "Everyone"), evil_group])
    normal_jids = {"alice@example.com", "bob@example.com", "carol@example.com"}
    for shared, members in baseline.items():
        kept = {j: n for j, n in hostile.get(shared, {}).items() if j in normal_jids}
        if uid.lower() in ("alice", "bob", "carol"):
            # mallory's JID collides with a real user's: both are left out, and reported
            kept = {j: n for j, n in kept.items() if j != f"{uid.lower()}@example.com"}
            members = {j: n for j, n in members.items() if j != f"{uid.lower()}@example.com"}
        assert kept == members, shared
    for shared, members in hostile.items():
        for jid, display in members.items():
            if jid in normal_jids and jid != f"{uid.lower()}@example.com":
                assert display == baseline["Everyone"][jid]
        assert "\n" not in shared and xml_safe(shared)
        assert all(xml_safe(display) and len(display) <= 256 for display in members.values())
        assert len(shared) <= 256

"""Hostile directory data: whatever one entry holds, nobody else's groups or
names change, and what is written still reads back as intended."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.config import parse
from ldapsync.directory import Entry
from ldapsync.groupsfile import parse as parse_file
from ldapsync.groupsfile import render, xml_safe
from ldapsync.invisible import has_invisible
from ldapsync.jid import prep
from ldapsync.mapping import map_directory, model_for, only_case
from ldapsync.membership import resolve
from ldapsync.templates import Templates
from tests.budget import examples

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


# Characters that show nothing or reorder text: format characters (bidi
# controls, zero-width characters, BOM, tags) and printable fillers
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\xad", "\u202e", "\u202d", "\u2066", "\u2069",
             "\u200e", "\u061c", "\U000e0041", "\u180e", "\u3164", "\u115f", "\ufe0f", "\u034f"]


@st.composite
def lookalikes(draw) -> str:
    """A real user's uid or name with invisible characters slipped in."""
    text = draw(st.sampled_from(["alice", "bob", "Alice Liddell", "Everyone", "Team"]))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(INVISIBLE)) + text[at:]
    return text


HOSTILE = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.text(st.one_of(st.sampled_from(INVISIBLE), st.characters(whitelist_categories=("Cf", "Ll", "Lo", "Mn"))),
            max_size=12),
    lookalikes(),
    st.sampled_from(["\n[Evil]\nalice@example.com=Owned", "x]\n[+All", "a=b=c", "\r\n", "\x00\x01\x1b",
                     "\ufeff[Team]", "\u2028line", "[", "]", "=", " ", "", "x" * 1_000_000, "\udcff\udcfe",
                     "ALICE", "alice", "bob@example.com", "../../etc/passwd", "{{ 7*7 }}",
                     "\xad",  # a soft hyphen: prepares to nothing, leaving "@example.com"
                     "alice\u200b", "ａｌｉｃｅ", "Alice\u202egpj.exe", "\u202e[Evil]", "\u3164", "alice\u2066"]),
)


@settings(max_examples=examples(300), deadline=None)
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
    # Only a uid that gives a real user's JID as it is (up to case) takes it from them: then both are left
    # out, and reported.  A lookalike (alice plus a zero-width space) is left out alone.
    raw = uid.lower() + "@example.com"
    prepared = prep(raw)
    taken = prepared if prepared in normal_jids and only_case(raw, prepared) else None
    for shared, members in baseline.items():
        kept = {j: n for j, n in hostile.get(shared, {}).items() if j in normal_jids and j != taken}
        assert kept == {j: n for j, n in members.items() if j != taken}, shared
    for shared, members in hostile.items():
        for jid, display in members.items():
            if jid in normal_jids and jid != taken:
                assert display == baseline["Everyone"][jid]
        assert "\n" not in shared and xml_safe(shared) and not has_invisible(shared)
        assert all(xml_safe(display) and len(display) <= 256 and not has_invisible(display)
                   for display in members.values())
        assert len(shared) <= 256

"""Templates rendered many entries at a time give what one render per entry
gives, whatever the data and whatever the template does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.config import MappingSettings, parse
from ldapsync.directory import Entry
from ldapsync.groupsfile import parse as parse_file
from ldapsync.mapping import (_RECORD, _SEPARATOR, Templates, directory_size, held_for, map_directory, model_for,
                              with_held)
from ldapsync.membership import resolve
from ldapsync.model import SharedGroup

TEMPLATES = [
    ("{{ uid | lower }}@example.com", "{{ displayName or cn }}"),
    ("{% set node = uid | lower %}{{ node }}@example.com", "{% if displayName %}{{ displayName }}{% endif %}"),
    ("{{ attrs.mail[0] if attrs.mail else uid }}", "{{ dn.split(',')[0] }} {{ cn | upper }}"),
    ("{{ uid[2] }}@example.com", "{{ cn }}"),  # fails for a uid shorter than 3 characters
    ("{% for c in uid %}{{ c }}{% endfor %}@x", "{{ displayName | replace('a', '=') }}\n"),
    ("{{ uid }}", "{{ displayName ~ loop_count | default('') }}"),
]

VALUES = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "a", "alice", "Åsa", _SEPARATOR, _RECORD, f"x{_RECORD}y", "\n", "{{ 7*7 }}", "]"]),
)
ENTRY = st.builds(
    lambda i, uid, name, cn, mail: Entry(
        f"uid=u{i},ou=people,dc=example,dc=com",
        {k: v for k, v in {"uid": uid, "displayname": name, "cn": cn, "mail": mail}.items() if v}),
    st.integers(0, 10**6),
    *[st.lists(VALUES, max_size=2)] * 4,
)


def one_by_one(templates: Templates, entry: Entry, key: str) -> str | None:
    try:
        return templates.render(key, entry, templates.user_attributes)
    except Exception:  # noqa: BLE001 - any failure means: not rendered
        return None


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TEMPLATES), st.lists(ENTRY, max_size=30))
def test_batches_render_like_single_entries(pair, entries):
    jid, name = pair
    templates = Templates(MappingSettings(jid=jid, name=name))
    batch = templates.render_people(entries)
    assert len(batch) == len(entries)
    singles = [(one_by_one(templates, e, "jid"), one_by_one(templates, e, "name")) for e in entries]
    # an entry that fails or holds a separator sends its chunk (here: all) to single renders
    held = any(_SEPARATOR in v or _RECORD in v for e in entries for vs in e.attrs.values() for v in vs)
    trouble = held or any(None in single for single in singles)
    for both, single in zip(batch, singles):
        assert both == single or (both is None and trouble)
    assert trouble or None not in batch


def test_a_failing_entry_is_reported_and_the_others_mapped():
    config = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "dc=x"}
groups: {base: "dc=x"}
mapping: {jid: "{{ uid[1] }}.{{ uid }}@example.com", name: "{{ cn }}"}
outputs: [{path: /tmp/unused.txt}]
""")
    users = [Entry(f"uid={u}{i},dc=x", {"uid": [f"{u}{i}" if u != "x" else u], "cn": [u.title()]})
             for i in range(1500) for u in ("alice", "x", "bob")]  # the failures span chunks
    team = Entry("cn=team,dc=x", {"cn": ["team"], "member": [u.dn for u in users]})
    mapped = map_directory(config, Templates(config.mapping), resolve(users, [team], config.users, config.groups))
    assert (mapped.people["uid=alice7,dc=x"].jid, mapped.people["uid=alice7,dc=x"].name) == (
        "l.alice7@example.com", "Alice")
    assert mapped.groups["team"].members["o.bob1499@example.com"] == "Bob"
    assert "mapping.jid failed" in mapped.left_out["uid=x7,dc=x"]
    assert sum(f.kind == "template-error" for f in mapped.findings) == 1500


def test_group_names_in_batches():
    templates = Templates(MappingSettings(group_name="{{ description or cn }}"))
    groups = [Entry("cn=a,dc=x", {"cn": ["a"], "description": ["Team A"]}), Entry("cn=b,dc=x", {"cn": ["b"]})]
    assert templates.render_group_names(groups) == ["Team A", "b"]
    hostile = Entry("cn=c,dc=x", {"cn": [f"c{_RECORD}"]})
    assert templates.render_group_names([*groups, hostile]) == [None] * 3  # each rendered on its own


COLLIDING = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "dc=x"}
groups: {base: "dc=x", public: ["All"]}
mapping: {jid: "{{ uid }}@example.com", name: "{{ cn }}", group_name: "{{ description or cn }}"}
static_groups:
  - {name: Team, members: {help@example.com: Help}}
  - {name: Desk, members: {help@example.com: Help}}
outputs: [{path: /tmp/unused.txt, exclude: [Other]}]
""")


def colliding_directory():
    users = [Entry(f"uid={u},dc=x", {"uid": [u], "cn": [u.title()]}) for u in ("alice", "bob", "carol", "dave")]
    groups = [Entry("cn=team,dc=x", {"cn": ["team"], "description": ["Team"], "member": ["uid=alice,dc=x"]}),
              Entry("cn=new,dc=x", {"cn": ["new"], "description": ["Team"], "member": ["uid=bob,dc=x"]}),
              Entry("cn=third,dc=x", {"cn": ["third"], "description": ["Team"], "member": ["uid=bob,dc=x"]}),
              Entry("cn=ops,dc=x", {"cn": ["ops"], "member": ["uid=carol,dc=x"]})]
    members = resolve(users, groups, COLLIDING.users, COLLIDING.groups)
    return map_directory(COLLIDING, Templates(COLLIDING.mapping), members)


def test_a_name_several_groups_claim_is_held_and_reported():
    mapped = colliding_directory()
    assert mapped.held == {"Team": ["cn=team,dc=x", "cn=new,dc=x", "cn=third,dc=x"]}
    assert set(mapped.groups) == {"ops", "Desk"}  # the static group of a held name is held with it
    [finding] = [f for f in mapped.findings if f.kind == "group-collision"]
    assert str(finding) == ("Team: cn=new,dc=x, cn=team,dc=x and cn=third,dc=x all map to this shared group name; "
                            "the name is held as it is in the current file while the other groups sync (change "
                            "mapping.group_name or a group's name, or set groups.on_name_collision: merge)")
    assert mapped.from_directory == {"ops": 1, "Team": 2}  # Desk is the config's alone
    assert "uid=bob,dc=x" not in mapped.left_out  # in a group, if a held one
    output = COLLIDING.outputs[0]
    assert held_for(output, mapped) == ["Team"]
    assert directory_size(output, mapped) == (2, 3)
    assert held_for(output.model_copy(update={"exclude": ["Team"]}), mapped) == []


def test_a_held_name_takes_its_group_from_the_current_file():
    mapped = colliding_directory()
    model = model_for(COLLIDING.outputs[0], mapped)
    current = parse_file("[+Team]\nalice@example.com=Alice (old name)\nzed@example.com=Zed\n[ops]\nx@example.com=X\n")
    held = with_held(model, ["Team"], current)
    # members and public flag as the file has them; a member the directory names elsewhere gets that name
    assert held.group("Team") == SharedGroup("Team", {"alice@example.com": "Alice (old name)",
                                                      "zed@example.com": "Zed"}, True)
    assert held.group("ops") == model.group("ops")
    renamed = parse_file("[Team]\ncarol@example.com=Carol (old name)\n")
    assert with_held(model, ["Team"], renamed).group("Team").members == {"carol@example.com": "Carol"}
    assert with_held(model, ["Team"], parse_file("[Other]\na@example.com=A\n")) == model  # absent: absent
    assert with_held(model, ["Team"], parse_file("[Team]\n")).group("Team") == SharedGroup("Team")

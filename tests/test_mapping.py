"""Templates rendered many entries at a time give what one render per entry
gives, whatever the data and whatever the template does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.config import MappingSettings, parse
from ldapsync.directory import Entry
from ldapsync.mapping import _RECORD, _SEPARATOR, Templates, map_directory
from ldapsync.membership import resolve

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


def test_python_errors_in_a_template_are_reported_per_entry_like_jinja2_errors():
    """{{ 1/0 }} or {{ uid + 1 }} raised ZeroDivisionError or TypeError out
    of the sync (a traceback); now the entry is left out with the reason."""
    config = parse("""
ldap: {servers: ["ldap://127.0.0.1"]}
users: {base: "dc=x"}
groups: {base: "dc=x"}
mapping: {jid: "{{ uid }}@example.com", name: "{{ cn }} ({{ 100 // (employeeNumber | int) }})",
          group_name: "{{ cn | truncate(description | int) }}"}
outputs: [{path: /tmp/unused.txt}]
""")
    users = [Entry("uid=alice,dc=x", {"uid": ["alice"], "cn": ["Alice"], "employeenumber": ["4"]}),
             Entry("uid=bob,dc=x", {"uid": ["bob"], "cn": ["Bob"], "employeenumber": ["0"]})]
    team = Entry("cn=team,dc=x", {"cn": ["team"], "description": ["10"], "member": [u.dn for u in users]})
    odd = Entry("cn=odd,dc=x", {"cn": ["odd"], "description": ["-1"], "member": [users[0].dn]})
    mapped = map_directory(config, Templates(config.mapping), resolve(users, [team, odd], config.users, config.groups))
    assert mapped.groups["team"].members == {"alice@example.com": "Alice (25)", "bob@example.com": "bob"}
    assert "odd" not in mapped.groups
    failed = {f.subject: f.message for f in mapped.findings if f.kind == "template-error"}
    assert failed == {"uid=bob,dc=x": "mapping.name failed: ZeroDivisionError: integer division or modulo by zero",
                      "cn=odd,dc=x": "mapping.group_name failed: AssertionError: expected length >= 3, got -1"}


def test_group_names_in_batches():
    templates = Templates(MappingSettings(group_name="{{ description or cn }}"))
    groups = [Entry("cn=a,dc=x", {"cn": ["a"], "description": ["Team A"]}), Entry("cn=b,dc=x", {"cn": ["b"]})]
    assert templates.render_group_names(groups) == ["Team A", "b"]
    hostile = Entry("cn=c,dc=x", {"cn": [f"c{_RECORD}"]})
    assert templates.render_group_names([*groups, hostile]) == [None] * 3  # each rendered on its own

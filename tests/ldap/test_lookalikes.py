"""Lookalike identities in a real directory: a uid that imitates alice's with a
zero-width space, and a display name with a right-to-left override.

The entries are added to the shared slapd for each test and removed after it,
so that the other tests see the directory as data/directory.ldif has it.
"""

from __future__ import annotations

import json

import pytest

from tests.ldap.conftest import run
from tests.ldap.directory import GROUPS, PEOPLE
from tests.ldap.test_sync import findings, groups_of

ALICE = f"uid=alice,{PEOPLE}"
LOOKALIKE = f"cn=Alice Lookalike,{PEOPLE}"
MALLORY = f"uid=mallory,{PEOPLE}"


@pytest.fixture
def lookalikes(slapd):
    entries = [
        (LOOKALIKE, {"objectClass": ["inetOrgPerson"], "cn": ["Alice Lookalike"], "sn": ["Lookalike"],
                     "uid": ["alice\u200b"], "displayName": ["Alice Liddell"]}),
        (MALLORY, {"objectClass": ["inetOrgPerson"], "cn": ["Mallory"], "sn": ["Mallory"], "uid": ["mallory"],
                   "displayName": ["Alice\u202egpj.exe"]}),
        (f"cn=lookalikes,{GROUPS}", {"objectClass": ["groupOfNames"], "cn": ["lookalikes"],
                                     "member": [ALICE, LOOKALIKE, MALLORY]}),
    ]
    connection = slapd.admin_connection()
    added = []
    try:
        for dn, attributes in entries:
            connection.add(dn, attributes=attributes)
            added.append(dn)
        yield
    finally:
        for dn in reversed(added):
            connection.delete(dn)
        connection.unbind()


def test_a_lookalike_uid_leaves_alice_in_every_roster_and_a_bidi_name_is_cleaned(capsys, make_config, tmp_path,
                                                                                 lookalikes):
    config = make_config()
    code, out, err = run(capsys, "run", "-c", config, "--json")
    assert code == 0, err
    report = json.loads(out)
    groups = groups_of(tmp_path / "groups.txt")  # no diagnostics: nothing invisible reached the file
    assert groups["lookalikes"] == {"alice@example.com": "Alice Liddell", "mallory@example.com": "Alicegpj.exe"}
    for name in ("All Staff", "Engineering", "R&D, Europe"):
        assert groups[name]["alice@example.com"] == "Alice Liddell"
    assert findings(report, "jid-lookalike") == [
        (f"{LOOKALIKE}: lookalike of {ALICE}: mapping.jid gives 'alice\\u200b@example.com', which Prosody reads as "
         f"alice@example.com, dropping U+200B ZERO WIDTH SPACE: left out, {ALICE} keeps the JID")]
    assert findings(report, "name-cleaned") == [
        f"{MALLORY}: display name 'Alice\\u202egpj.exe' cleaned to 'Alicegpj.exe'"]
    assert report["counts"]["users_left_out"]["lookalike JID"] == 1
    assert "jid-collision" not in {f["kind"] for f in report["findings"]}

    code, out, _ = run(capsys, "explain", "-c", config, "alice@example.com")
    assert code == 0
    assert f"alice@example.com comes from {ALICE}, shown as" in out
    assert f"{LOOKALIKE} is left out: lookalike of {ALICE}" in out

"""The sync pipeline without a server: what ldapsync does with a directory's
answer, from search to written file, over an in-memory directory.  How the
real servers answer is tested in tests/ldap (slapd) and tests/ad (Samba)."""

from __future__ import annotations

import pytest
import yaml

from ldapsync import config as configlib
from ldapsync import safety, sync
from ldapsync.directory import DirectoryError
from ldapsync.errors import ExitCode
from tests.memory_directory import MemoryDirectory

PEOPLE, GROUPS = "ou=people,dc=example,dc=com", "ou=groups,dc=example,dc=com"


def person(uid: str, name: str, **more) -> tuple[str, dict]:
    return f"uid={uid},{PEOPLE}", {"objectClass": ["inetOrgPerson"], "uid": [uid], "cn": [name],
                                   "displayName": [name], **more}


def group(cn: str, *members: str) -> tuple[str, dict]:
    return f"cn={cn},{GROUPS}", {"objectClass": ["groupOfNames"], "cn": [cn], "member": list(members)}


def company(staff: int = 10) -> dict[str, dict]:
    """``staff`` people; everyone in Staff, the first three in Team (through a
    nested group for the third), one disabled account."""
    people = dict(person(f"u{i}", f"User {i}") for i in range(staff))
    people.update([person("gone", "Gone Away", nsAccountLock=["TRUE"])])
    dns = list(people)
    return {
        PEOPLE: {"objectClass": ["organizationalUnit"], "ou": ["people"]},
        GROUPS: {"objectClass": ["organizationalUnit"], "ou": ["groups"]},
        **people,
        **dict([group("Staff", *dns), group("Team", dns[0], dns[1], f"cn=Inner,{GROUPS}"),
                group("Inner", dns[2])]),
    }


@pytest.fixture
def config(tmp_path):
    data = {
        "ldap": {"servers": ["ldap://directory.invalid"]},
        "users": {"base": PEOPLE, "disabled": "389ds"},
        "groups": {"base": GROUPS, "public": ["Staff"]},
        "mapping": {"jid": "{{ uid }}@example.com", "name": "{{ displayName }}"},
        "outputs": [{"path": str(tmp_path / "groups.txt")}],
        "state": {"path": str(tmp_path / "state.json")},
    }
    return configlib.parse(yaml.safe_dump(data))


def test_groups_members_names_nesting_and_disabled_accounts(config):
    mapped = sync.fetch(config, MemoryDirectory(company(3))).mapped
    assert {name: (dict(g.members), g.public) for name, g in mapped.groups.items()} == {
        "Staff": ({f"u{i}@example.com": f"User {i}" for i in range(3)}, True),
        "Team": ({f"u{i}@example.com": f"User {i}" for i in range(3)}, False),  # u2 through Inner
        "Inner": ({"u2@example.com": "User 2"}, False),
    }
    assert f"uid=gone,{PEOPLE}" in mapped.left_out


def test_the_directory_is_closed_once_read(config):
    directory = MemoryDirectory(company())
    sync.fetch(config, directory)
    # users and groups (the 389ds preset reads an attribute of the users: no third search)
    assert directory.searches == 2 and not directory.connected


def test_a_run_writes_once_then_finds_nothing_to_change(config):
    path = config.outputs[0].path
    first = sync.run(config, MemoryDirectory(company()))
    assert first.outputs[0].written.changed
    text = path.read_text()
    assert "[+Staff]\n" in text and "u0@example.com=User 0\n" in text and "gone@" not in text
    again = sync.run(config, MemoryDirectory(company()))
    assert not again.outputs[0].changed and path.read_text() == text


def test_a_dry_run_writes_nothing(config):
    result = sync.run(config, MemoryDirectory(company()), dry_run=True)
    assert result.outputs[0].changed and not config.outputs[0].path.exists()


@pytest.mark.parametrize("directory", [MemoryDirectory(company(), unreachable=True),
                                       MemoryDirectory(company(), drop_after=5)], ids=["unreachable", "dropped"])
def test_a_failing_directory_leaves_the_file_as_it_was(config, directory):
    sync.run(config, MemoryDirectory(company()))
    before = config.outputs[0].path.read_bytes()
    with pytest.raises(DirectoryError) as failed:
        sync.run(config, directory)
    assert failed.value.exit_code == ExitCode.UNAVAILABLE
    assert config.outputs[0].path.read_bytes() == before


def test_losing_most_members_is_refused_and_nothing_is_written(config):
    sync.run(config, MemoryDirectory(company(10)))
    before = config.outputs[0].path.read_bytes()
    with pytest.raises(safety.Refused) as refused:
        sync.run(config, MemoryDirectory(company(2)))
    assert refused.value.exit_code == ExitCode.REFUSED
    assert "member lines" in str(refused.value)
    assert config.outputs[0].path.read_bytes() == before
    forced = sync.run(config, MemoryDirectory(company(2)), force="the team left")
    assert forced.outputs[0].written.changed

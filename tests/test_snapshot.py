"""The snapshot incremental runs keep: applying changes, and refusing a file
that is damaged, foreign or open to other accounts."""

from __future__ import annotations

import json
import os

import pytest

from ldapsync import snapshot as snapshotlib
from ldapsync.directory import Entry


def make(entries: dict[str, dict[str, Entry]]) -> snapshotlib.Snapshot:
    header = snapshotlib.Header(snapshotlib.FORMAT, "fp", "cfg", "syncrepl", "ldap://x", {"probe": {"csn": ["1"]}},
                                1.0, 1.0)
    return snapshotlib.Snapshot(header, entries)


def user(name: str, ou: str = "people") -> Entry:
    return Entry(f"uid={name},ou={ou},dc=example,dc=com", {"uid": [name]})


def test_a_changed_entry_keeps_its_place_and_a_new_one_goes_last():
    snap = make({"users": {"1": user("a"), "2": user("b"), "3": user("c")}})
    removed, stale = snap.apply("users", {"2": Entry(user("b").dn, {"uid": ["b"], "cn": ["B"]}), "4": user("d")},
                                ["3"], None)
    assert list(snap.entries["users"]) == ["1", "2", "4"]
    assert snap.entries["users"]["2"].attrs["cn"] == ["B"]
    assert removed == 1
    assert sorted(stale) == sorted([user("c").dn, user("d").dn])


def test_a_rename_names_both_dns_and_a_present_phase_removes_the_rest():
    snap = make({"users": {"1": user("a"), "2": user("b"), "3": user("c")}})
    removed, stale = snap.apply("users", {"1": user("a", "staff")}, [], {"1", "2"})
    assert list(snap.entries["users"]) == ["1", "2"]
    assert removed == 1
    assert sorted(stale) == sorted([user("a").dn, user("a", "staff").dn, user("c").dn])


def test_unknown_deletions_are_ignored():
    snap = make({"users": {"1": user("a")}})
    assert snap.apply("users", {}, ["elsewhere"], None) == (0, [])
    assert list(snap.entries["users"]) == ["1"]


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    path = folder / "state.json.snapshot"
    snapshotlib.save(path, make({"users": {"1": user("ä")}, "groups": {}}))
    return path


def test_a_saved_snapshot_loads_as_it_was_and_is_owner_only(saved):
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600"
    loaded = snapshotlib.load(saved)
    assert loaded.entries == {"users": {"1": user("ä")}, "groups": {}}
    assert snapshotlib.read_header(saved).marker == {"probe": {"csn": ["1"]}}


def test_a_damaged_snapshot_is_not_used(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(snapshotlib.Unusable, match="damaged"):
        snapshotlib.load(saved)


def test_a_snapshot_of_another_version_is_not_used(saved):
    saved.write_bytes(saved.read_bytes().replace(snapshotlib.FORMAT.encode(), b"1 ldapsync-0.0.9 py3.11"))
    with pytest.raises(snapshotlib.Unusable, match="another version"):
        snapshotlib.read_header(saved)


@pytest.mark.parametrize("content", [b"", b"ldapsync directory snapshot\n{not json\n", b"hello\n"])
def test_a_file_that_is_no_snapshot_is_not_used(saved, content):
    saved.write_bytes(content)
    with pytest.raises(snapshotlib.Unusable):
        snapshotlib.load(saved)


def test_a_snapshot_others_can_change_is_not_used(saved):
    saved.chmod(0o620)
    with pytest.raises(snapshotlib.Unusable, match="can be changed by other users"):
        snapshotlib.read_header(saved)


def test_a_link_in_place_of_the_snapshot_is_not_followed(saved, tmp_path):
    target = tmp_path / "elsewhere"
    saved.rename(target)
    saved.symlink_to(target)
    with pytest.raises(snapshotlib.Unusable, match="symbolic link"):
        snapshotlib.load(saved)


def test_only_what_shapes_the_output_counts_as_a_changed_config():
    from ldapsync.config import parse
    from ldapsync.incremental import config_hash

    def config(**sections: object) -> str:
        data = {"ldap": {"servers": ["ldap://127.0.0.1:1"]}, "users": {"base": "ou=people,dc=example,dc=com"},
                "groups": {"base": "ou=groups,dc=example,dc=com"}, "outputs": [{"path": "/tmp/groups.txt"}],
                "state": {"path": "/tmp/state.json"},
                **sections}
        return config_hash(parse(json.dumps(data)))  # JSON is YAML

    same = config()
    assert config(schedule={"poll": "60s", "cron": "0 4 * * *"}, metrics={"textfile": "/tmp/m.prom"}) == same
    assert config(mapping={"name": "{{ cn }}"}) != same
    assert config(outputs=[{"path": "/tmp/other.txt"}]) != same

"""The cache of the last written groups: used only for the exact bytes it was saved with."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldapsync import modelcache
from ldapsync.groupsfile import GroupsFile, parse, render
from ldapsync.model import GroupsModel, SharedGroup

STAFF = SharedGroup("All Staff", {"a@x": "Al", "b@x": "Bo", "c@x": "Cy"}, True)
TEAM = SharedGroup("Team", {"a@x": "Al", "c@x": "Cy"})
MODEL = GroupsModel.of([STAFF, TEAM, SharedGroup("Empty", {})])


def saved(tmp_path: Path) -> tuple[Path, bytes]:
    data = render(MODEL).encode()
    cache = modelcache.path_for(tmp_path / "state.json", tmp_path / "groups.txt")
    modelcache.save(cache, modelcache.encode(parse(data.decode()), data))
    return cache, data


def test_the_cache_gives_back_the_groups_of_the_file_it_was_saved_with(tmp_path):
    cache, data = saved(tmp_path)
    assert cache.parent == tmp_path and cache.name.startswith("state.json.groups.txt.")
    assert cache.stat().st_mode & 0o777 == 0o600
    cached = modelcache.load(cache, data)
    assert cached.means(MODEL)
    read, from_cache = parse(data.decode()), GroupsFile.of_groups(cached.groups())
    assert list(from_cache.groups.items()) == list(read.groups.items())
    assert from_cache.memberships == read.memberships and list(from_cache.public) == list(read.public)
    assert from_cache.declared == read.declared


@pytest.mark.parametrize("other", [
    GroupsModel.of([STAFF, TEAM, SharedGroup("Empty", {"d@x": "Di"})]),  # a size differs
    GroupsModel.of([STAFF, TEAM, SharedGroup("Empty", {}, True)]),  # a public flag
    GroupsModel.of([STAFF, SharedGroup("Team", {"a@x": "Al", "b@x": "Bo"}), SharedGroup("Empty")]),  # same sizes
    GroupsModel.of([STAFF, SharedGroup("Team", {"a@x": "Al", "c@x": "Cyril"}), SharedGroup("Empty")]),  # a name
    GroupsModel.of([STAFF, TEAM]),
])
def test_the_cache_tells_other_groups_apart(tmp_path, other):
    cache, data = saved(tmp_path)
    assert not modelcache.load(cache, data).means(other)


def test_one_cache_per_output_and_none_without_a_state_file(tmp_path):
    one = modelcache.path_for(tmp_path / "state.json", Path("/etc/prosody/a/groups.txt"))
    other = modelcache.path_for(tmp_path / "state.json", Path("/etc/prosody/b/groups.txt"))
    assert one != other
    assert modelcache.path_for(None, Path("/etc/prosody/groups.txt")) is None


def test_other_bytes_than_those_saved_are_read_instead(tmp_path, logged):
    cache, data = saved(tmp_path)
    assert modelcache.load(cache, data + b"x@x=X\n") is None
    assert "not what ldapsync wrote last" in logged.text
    assert modelcache.load(cache, None) is None  # no file
    assert modelcache.load(None, data) is None  # no state file
    assert modelcache.load(tmp_path / "missing.model", data) is None


def test_a_damaged_or_foreign_cache_is_not_used(tmp_path, logged):
    cache, data = saved(tmp_path)
    blob = cache.read_bytes()
    cache.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    assert modelcache.load(cache, data) is None
    assert "is damaged" in logged.text
    cache.write_bytes(blob.replace(b" py3.", b" py2.", 1))
    assert modelcache.load(cache, data) is None
    assert "of another format" in logged.text
    cache.write_bytes(b"not a cache at all")
    assert modelcache.load(cache, data) is None


def test_a_cache_that_cannot_be_saved_is_a_warning(tmp_path, logged):
    in_the_way = tmp_path / "cache.model"
    in_the_way.mkdir()  # a directory where the file should go
    modelcache.save(in_the_way, b"blob")
    assert "cannot save the cache" in logged.text
    assert in_the_way.is_dir()

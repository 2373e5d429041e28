"""Incremental runs on a real 389 Directory Server with the Content
Synchronization plugin (python-ldap): after random sequences of real
changes (tests/ldap/mutations.py: additions, deletions, renames, moves out
of and into the users' base, accounts disabled and enabled, members
changed, groups nested, created, renamed and deleted), the file a run
writes from its snapshot and the changes is the one a full read writes.

389-ds names entries in content sync by their nsUniqueId, not their
entryUUID, sends deletions (and moves out of the base) one by one, but
nothing for an entry changed so that the filter no longer matches it.

The sequence comes from a seed: LDAPSYNC_INCREMENTAL_SEED=N picks another.
"""

from __future__ import annotations

import difflib
import json
import os
import random
from pathlib import Path

import pytest
import yaml

from tests.ds389.test_end_to_end import write_config
from tests.ldap.conftest import run
from tests.ldap.mutations import Mutator
from tests.ldap.syncprov_directory import GROUPS, USERS_FILTER

SEED = int(os.environ.get("LDAPSYNC_INCREMENTAL_SEED", "389"))
STEPS = int(os.environ.get("LDAPSYNC_DS389_STEPS", "40"))


@pytest.fixture
def python_ldap():
    pytest.importorskip("ldap", reason="python-ldap is not installed (pip install -e '.[test]')")
    return "python-ldap"


def walk_config(tmp_path: Path, server, name: str, *, state: bool) -> Path:
    """The random walk's directory as tests/ldap/test_incremental.py reads it."""
    path = write_config(tmp_path, server, "python-ldap", name, state=state, users_filter=USERS_FILTER,
                        disabled="none")
    config = yaml.safe_load(path.read_text())
    config["groups"] = {"base": GROUPS, "public": ["Team 01", "renamed*"]}
    path.write_text(yaml.safe_dump(config))
    return path


def output(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text())["outputs"][0]["path"])


def run_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "run", *argv, "--json")
    assert code == 0, f"ldapsync run {' '.join(map(str, argv))} exited {code}:\n{out}\n{err}"
    return json.loads(out)


def full_file(capsys, config: Path) -> bytes:
    code, out, err = run(capsys, "run", "--full", "-c", config)
    assert code == 0, f"ldapsync run --full exited {code}:\n{out}\n{err}"
    return output(config).read_bytes()


def file_diff(incremental: bytes, full: bytes) -> str:
    return "".join(difflib.unified_diff(full.decode().splitlines(True), incremental.decode().splitlines(True),
                                        "full read", "incremental read"))


def test_incremental_equals_full_after_random_changes(capsys, tmp_path, walk, python_ldap):
    rng = random.Random(SEED)
    mutator = Mutator(walk.admin_connection(), rng)
    incremental = walk_config(tmp_path, walk, "A", state=True)
    full = walk_config(tmp_path, walk, "B", state=False)

    first = run_json(capsys, "-c", incremental)
    assert first["read"]["kind"] == "full"
    assert first["read"]["method"] == "syncrepl-389ds", first["read"]
    assert output(incremental).read_bytes() == full_file(capsys, full)

    history: list[str] = []
    kinds: dict[str, int] = {}
    for step in range(1, STEPS + 1):
        changes = [mutator.step() for _ in range(rng.randint(0, 3))]
        history.append(f"step {step}: " + ("; ".join(changes) or "no change"))
        where = f"seed {SEED}, after:\n" + "\n".join(history[-8:])
        read = run_json(capsys, "-c", incremental)["read"]
        expected = full_file(capsys, full)
        got = output(incremental).read_bytes()
        assert got == expected, f"incremental != full; {where}\n{file_diff(got, expected)}"
        assert read["kind"] in ("incremental", "unchanged"), f"read {read}; {where}"
        if not changes:
            assert read["kind"] == "unchanged", f"read {read}; {where}"
        kinds[read["kind"]] = kinds.get(read["kind"], 0) + 1
    print(f"seed {SEED}, {STEPS} steps: {kinds}")

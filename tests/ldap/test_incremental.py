"""Incremental sync equals a full sync, byte for byte, on a real slapd with
syncprov, after random sequences of real directory changes; and the faults
in between leave the file as it was or fall back to a full read.

Config A keeps a state file (and so a snapshot) and reads only the changes;
config B always reads everything (run --full). Both write their own file from
the same directory, so any difference is the incremental path's doing.

The sequence of changes comes from a seed: LDAPSYNC_INCREMENTAL_SEED=N picks
another one; a failure names the seed and the steps that led to it.
"""

from __future__ import annotations

import difflib
import json
import os
import random
from pathlib import Path

import pytest
import yaml

from devtools import slapd as harness
from tests.ldap.conftest import HOST, run
from tests.ldap.directory import SYNC_DN, SYNC_PASSWORD
from tests.ldap.mutations import Mutator
from tests.ldap.syncprov_directory import GROUPS, PEOPLE, USERS_FILTER

SEED = int(os.environ.get("LDAPSYNC_INCREMENTAL_SEED", "15"))
STEPS = int(os.environ.get("LDAPSYNC_INCREMENTAL_STEPS", "150"))
# Every limit off: a random change must never be refused.
NO_LIMITS = {
    "max_groups_removed": None, "max_groups_removed_percent": None,
    "max_members_removed": None, "max_members_removed_percent": None,
    "max_contacts_lost": None, "refuse_empty": False, "max_public_groups_added": None,
    "max_public_contacts_gained": None, "max_public_contacts_gained_percent": None,
    "max_contacts_gained": None,
}


@pytest.fixture(scope="module")
def loaded_backup(syncprov_slapd, tmp_path_factory) -> Path:
    """The syncprov directory as loaded, to put back before each test."""
    path = tmp_path_factory.mktemp("backup") / "loaded.ldif"
    syncprov_slapd.backup(path)
    return path


@pytest.fixture
def directory(syncprov_slapd, loaded_backup):
    """The syncprov slapd with its data as loaded, whatever earlier tests
    changed: a seed then always gives the same sequence of changes."""
    syncprov_slapd.restore(loaded_backup)
    return syncprov_slapd


def write_config(tmp_path: Path, server: harness.Slapd, backend: str, name: str, *, state: bool,
                 users_filter: str = USERS_FILTER) -> Path:
    secret = tmp_path / "bind.password"
    secret.write_text(SYNC_PASSWORD + "\n")
    secret.chmod(0o600)
    data = {
        "ldap": {"servers": [server.url], "bind_dn": SYNC_DN, "bind_password_file": str(secret),
                 "backend": backend, "page_size": 50},
        "users": {"base": PEOPLE, "filter": users_filter},
        "groups": {"base": GROUPS, "public": ["Team 01", "renamed*"]},
        "mapping": {"jid": "{{ uid | lower }}@example.com", "name": "{{ displayName or cn }}",
                    "group_name": "{{ description or cn }}"},
        "outputs": [{"path": str(tmp_path / f"groups-{name}.txt"), "host": HOST, "backups": 0,
                     "safety": NO_LIMITS}],
    }
    if state:
        data["state"] = {"path": str(tmp_path / f"state-{name}" / "state.json")}
        (tmp_path / f"state-{name}").mkdir(mode=0o700)
    path = tmp_path / f"ldapsync-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


def output(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text())["outputs"][0]["path"])


def run_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "run", *argv, "--json")
    assert code == 0, f"ldapsync run {' '.join(map(str, argv))} exited {code}:\n{out}\n{err}"
    return json.loads(out)


def full_run(capsys, config: Path) -> bytes:
    code, out, err = run(capsys, "run", "--full", "-c", config)
    assert code == 0, f"ldapsync run --full exited {code}:\n{out}\n{err}"
    return output(config).read_bytes()


def file_diff(incremental: bytes, full: bytes) -> str:
    return "".join(difflib.unified_diff(full.decode().splitlines(True), incremental.decode().splitlines(True),
                                        "full read", "incremental read"))


def test_incremental_equals_full_after_random_changes(capsys, tmp_path, directory, backend):
    """After each of STEPS rounds of 1-3 random changes, A's incremental file is
    B's full file, byte for byte; and A read incrementally (python-ldap) or
    only probed before a full read (ldap3, which has no content-sync consumer)."""
    seed = SEED + (backend == "python-ldap")
    rng = random.Random(seed)
    mutator = Mutator(directory.admin_connection(), rng)
    incremental = write_config(tmp_path, directory, backend, "A", state=True)
    full = write_config(tmp_path, directory, backend, "B", state=False)

    first = run_json(capsys, "-c", incremental)
    assert first["read"]["kind"] == "full"
    assert output(incremental).read_bytes() == full_run(capsys, full)

    history: list[str] = []
    kinds: dict[str, int] = {}
    for step in range(1, STEPS + 1):
        changes = [mutator.step() for _ in range(rng.randint(0, 3))]
        history.append(f"step {step}: " + ("; ".join(changes) or "no change"))
        where = f"seed {seed} (LDAPSYNC_INCREMENTAL_SEED={SEED}), backend {backend}, after:\n" + \
            "\n".join(history[-8:])

        read = run_json(capsys, "-c", incremental)["read"]
        expected = full_run(capsys, full)
        got = output(incremental).read_bytes()
        assert got == expected, f"incremental != full; {where}\n{file_diff(got, expected)}"
        kinds[read["kind"]] = kinds.get(read["kind"], 0) + 1
        if backend == "python-ldap":
            assert read["kind"] in ("incremental", "unchanged"), f"read {read}; {where}"
            if not changes:
                assert read["kind"] == "unchanged", f"read {read}; {where}"
        elif changes:
            assert read["kind"] == "full" and read["reason"], f"read {read}; {where}"
        else:
            assert read["kind"] == "unchanged", f"read {read}; {where}"
    print(f"seed {seed}, {STEPS} steps: {kinds}")

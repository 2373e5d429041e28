"""Whole runs against the real slapd while another local account tampers
with what ldapsync touches: the groups file's directory (writable by the
prosody group) and the state directory.  Every case ends in a clear message
and a documented exit code, with the groups file as it was and nothing
outside ldapsync's own files touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import VICTIM
from tests.ldap.conftest import run


@pytest.fixture
def stateful(make_config, tmp_path):
    """A config with a state file in its own directory, as in production."""
    statedir = tmp_path / "state"
    statedir.mkdir(mode=0o700)

    def make(**kwargs) -> Path:
        path = make_config(**kwargs)
        data = yaml.safe_load(path.read_text())
        data.setdefault("state", {})["path"] = str(statedir / "state.json")
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return path

    return make


def files_beside(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


# --- the groups file's directory ---------------------------------------------------------


@pytest.mark.parametrize("flags", [(), ("--force", "--reason", "testing")])
def test_a_link_at_the_groups_file_is_refused_as_a_link(capsys, stateful, tmp_path, victim, flags):
    config = stateful()
    target = tmp_path / "groups.txt"
    target.symlink_to(victim)
    code, out, err = run(capsys, "run", "-c", config, *flags)
    assert code == 73
    assert f"refusing to write {target}: it is a symbolic link" in err and "refused to write" not in err
    assert victim.read_bytes() == VICTIM and target.is_symlink()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()
                and p.read_bytes() == VICTIM and p != victim]  # copied nowhere (no backup of it)
    assert "secret-hash" not in out + err


def test_a_fifo_at_the_groups_file_fails_at_once_and_frees_the_lock(capsys, stateful, tmp_path):
    config = stateful()
    target = tmp_path / "groups.txt"
    os.mkfifo(target)
    for _ in range(2):  # the second run finds the lock free: 73 again, not 75
        started = time.monotonic()
        code, _, err = run(capsys, "run", "-c", config)
        assert code == 73 and "it is a FIFO, not a regular file" in err
        assert time.monotonic() - started < 20
    code, _, err = run(capsys, "diff", "-c", config)
    assert code == 73 and "FIFO" in err


def test_a_huge_file_planted_at_the_groups_file_is_refused(capsys, stateful, tmp_path):
    target = tmp_path / "groups.txt"
    with target.open("wb") as f:
        f.truncate(600 << 20)  # sparse: costs no disk
    code, _, err = run(capsys, "run", "-c", stateful())
    assert code == 73 and "more than ldapsync reads" in err
    assert target.stat().st_size == 600 << 20


def test_a_link_planted_at_the_default_lock_is_not_written_through(capsys, make_config, tmp_path, victim):
    """Without state.path the lock stays beside the groups file, in a
    directory others may write: a link there is refused, never followed."""
    (tmp_path / ".groups.txt.ldapsync.lock").symlink_to(victim)
    code, _, err = run(capsys, "run", "-c", make_config())
    assert code == 73 and "cannot open the lock file" in err and "symbolic link" in err
    assert victim.read_bytes() == VICTIM and not (tmp_path / "groups.txt").exists()


def test_with_a_state_file_the_lock_lives_beside_it(capsys, stateful, tmp_path, victim):
    (tmp_path / ".groups.txt.ldapsync.lock").symlink_to(victim)  # no longer where the lock is
    assert run(capsys, "run", "-c", stateful())[0] == 0
    assert (tmp_path / "state" / "state.json.lock").is_file() and victim.read_bytes() == VICTIM


def test_a_temporary_file_left_by_a_killed_run_is_removed(capsys, stateful, tmp_path):
    config = stateful()
    leftover = tmp_path / ".groups.txt.ldapsync-00112233aabb.tmp"
    leftover.write_bytes(b"[Half\nalice@exa")
    assert run(capsys, "run", "-c", config)[0] == 0
    assert not leftover.exists()
    assert files_beside(tmp_path / "groups.txt") == ["bind.password", "groups.txt", "ldapsync.yaml", "state"]


# --- the state directory -----------------------------------------------------------------


@pytest.mark.parametrize("content", [b"garbage\x00", b'{"runs_total": "x"}', b'{"finished": "not a date"}'])
def test_a_damaged_state_file_is_a_warning_and_the_run_goes_on(capsys, stateful, tmp_path, content):
    config = stateful()
    state = tmp_path / "state" / "state.json"
    state.write_bytes(content)
    code, out, _ = run(capsys, "status", "-c", config)
    assert code == 3 and out.startswith("LDAPSYNC UNKNOWN - the state file") and (
        "cannot be used" in out or "is damaged" in out)
    code, _, err = run(capsys, "run", "-c", config)
    assert code == 0 and "starting a new record" in err
    assert json.loads(state.read_text())["runs_total"] == 1
    code, out, _ = run(capsys, "status", "-c", config)
    assert code == 0 and out.startswith("LDAPSYNC OK")


def test_a_forged_cache_cannot_make_a_run_skip_its_write(capsys, stateful, tmp_path):
    """Whoever can write the state directory's cache must not be able to
    make ldapsync believe the file already holds what it should."""
    target = tmp_path / "groups.txt"
    assert run(capsys, "run", "-c", stateful(groups={"include": ["Engineering"]}))[0] == 0
    narrow_bytes = target.read_bytes()
    cache = next((tmp_path / "state").glob("state.json.groups.txt.*.model"))
    # the cache a full run leaves, re-labelled with the narrow file's hash
    config = stateful()  # (the same config file, now without the narrowing)
    assert run(capsys, "run", "-c", config, "--force", "--reason", "test")[0] == 0
    full_bytes = target.read_bytes()
    import hashlib

    blob = cache.read_bytes()
    forged = blob.replace(hashlib.sha256(full_bytes).hexdigest().encode(),
                          hashlib.sha256(narrow_bytes).hexdigest().encode())
    assert forged != blob
    target.write_bytes(narrow_bytes)
    cache.write_bytes(forged)
    cache.chmod(0o660)  # as a group member could have left it
    code, out, err = run(capsys, "run", "-c", config, "--force", "--reason", "test")
    assert code == 0 and "not using the cache" in err and "can be changed by other users" in err
    assert "written" in out and target.read_bytes() == full_bytes


def test_a_state_file_that_cannot_be_saved_after_a_write_is_exit_74(capsys, stateful, tmp_path):
    config = stateful()
    (tmp_path / "state" / "state.json").mkdir()  # cannot be replaced by a file
    code, out, err = run(capsys, "run", "-c", config)
    assert code == 74
    assert "written" in out and (tmp_path / "groups.txt").exists()
    assert "cannot record the run in the state file" in err


# --- secrets and trust ------------------------------------------------------------------


def test_the_post_change_command_does_not_get_the_password(capsys, make_config, tmp_path, monkeypatch):
    seen = tmp_path / "environment"
    config = make_config(outputs=[{"path": str(tmp_path / "groups.txt"),
                                   "post_change_command": ["sh", "-c", f"env > {seen}"]}])
    data = yaml.safe_load(config.read_text())
    del data["ldap"]["bind_password_file"]
    data["ldap"]["bind_password_env"] = "LDAPSYNC_TEST_PASSWORD"
    config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LDAPSYNC_TEST_PASSWORD", (tmp_path / "bind.password").read_text().strip())
    assert run(capsys, "run", "-c", config)[0] == 0
    environment = seen.read_text()
    assert "LDAPSYNC_TEST_PASSWORD" not in environment and "PATH=" in environment


@pytest.mark.parametrize("which", ["config", "password file", "config directory"])
def test_a_config_or_password_file_others_can_write_is_refused(capsys, make_config, tmp_path, which):
    config = make_config()
    if which == "config":
        config.chmod(0o620)
        culprit = config
    elif which == "password file":
        culprit = tmp_path / "bind.password"
        culprit.chmod(0o620)
    else:
        culprit = tmp_path
        tmp_path.chmod(0o777)
    try:
        code, _, err = run(capsys, "run", "-c", config)
    finally:
        tmp_path.chmod(0o700)
    assert code == 78 and str(culprit) in err and "can be changed by other users" in err
    assert not (tmp_path / "groups.txt").exists()


# --- serve stops on time ----------------------------------------------------------------


def test_serve_stops_within_shutdown_timeout_whatever_the_sync_does(stateful, tmp_path):
    config = stateful(outputs=[{"path": str(tmp_path / "groups.txt"), "post_change_timeout": 120,
                                "post_change_command": ["sh", "-c", f"touch {tmp_path}/hanging; sleep 60"]}])
    data = yaml.safe_load(config.read_text())
    data["schedule"] = {"cron": "* * * * * *", "retries": 0, "shutdown_timeout": 1}
    config.write_text(yaml.safe_dump(data))
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "ldapsync", "-v", "serve", "-c", str(config)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "hanging").exists():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 75
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "with a sync still under way: it is abandoned" in text and "Traceback" not in text
    assert (tmp_path / "groups.txt").read_bytes().startswith(b"[")

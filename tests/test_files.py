"""Every file ldapsync touches, as another local account could leave it:
links, FIFOs, devices, huge files, files and directories others can write,
damaged state.  Each case must end in a clear error or a warning and a
fallback, never a traceback, a hang, or a write outside ldapsync's own files."""

from __future__ import annotations

import json
import os
import pwd
import threading
import time
from pathlib import Path

import pytest

from ldapsync import backups, modelcache, safeio
from ldapsync import state as statelib
from ldapsync.cli import main
from ldapsync.config import parse
from ldapsync.errors import ExitCode, UserError
from ldapsync.groupsfile import parse as parse_groups
from ldapsync.groupsfile import render
from ldapsync.model import GroupsModel, SharedGroup
from ldapsync.writer import WriteError, write_if_changed
from tests.conftest import VICTIM

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another account")


def nobody() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user 'nobody'")


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- reading: links, FIFOs, devices, sizes ------------------------------------------------


def test_a_link_is_not_followed_unless_asked(tmp_path, victim):
    link = tmp_path / "groups.txt"
    link.symlink_to(victim)
    with pytest.raises(safeio.UnsafeFile, match="is a symbolic link; ldapsync does not follow links here"):
        safeio.read_bytes(link, "groups file")
    assert safeio.read_bytes(link, "groups file", follow=True) == VICTIM


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_anything_but_a_regular_file_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "groups.txt"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: a plain open would hang
        expected = "is a FIFO, not a regular file"
    elif kind == "device":
        path = Path("/dev/zero")  # a plain read would never end
        expected = "is a device, not a regular file"
    else:
        path.mkdir()
        expected = "is a directory, not a regular file"
    started = time.monotonic()
    with pytest.raises(safeio.UnsafeFile, match=expected):
        safeio.read_bytes(path, "groups file", follow=True)
    assert time.monotonic() - started < 2


def test_a_file_over_its_limit_is_refused_without_reading_it(tmp_path, monkeypatch):
    monkeypatch.setitem(safeio.LIMITS, "state", 100)
    path = tmp_path / "state.json"
    with path.open("wb") as f:
        f.truncate(101)
    with pytest.raises(safeio.UnsafeFile, match="is 101 bytes, more than ldapsync reads"):
        safeio.read_bytes(path, "state")
    path.write_bytes(b"x" * 100)
    assert len(safeio.read_bytes(path, "state")) == 100


def test_trust_needs_the_file_and_every_directory_above_it_safe(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    path = folder / "cache"
    path.write_bytes(b"x")
    path.chmod(0o600)
    assert safeio.trust_problem(path, os.stat(path)) is None
    path.chmod(0o620)
    assert "can be changed by other users (mode 0620); run 'chmod go-w" in safeio.trust_problem(path, os.stat(path))
    path.chmod(0o604)
    assert safeio.trust_problem(path, os.stat(path)) is None
    assert "other users can read it (mode 0604)" in safeio.trust_problem(path, os.stat(path), secret=True)
    path.chmod(0o600)
    folder.chmod(0o770)
    assert f"the directory {folder} can be changed by other users (mode 0770)" in safeio.trust_problem(
        path, os.stat(path))
    folder.chmod(0o1777)  # sticky, as /tmp: others cannot replace what is in it
    assert safeio.trust_problem(path, os.stat(path)) is None


@root_only
def test_trust_refuses_a_file_or_directory_of_another_account(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    path = folder / "cache"
    path.write_bytes(b"x")
    os.chown(path, nobody(), -1)
    assert "belongs to nobody, who could change it" in safeio.trust_problem(path, os.stat(path))
    os.chown(path, 0, -1)
    os.chown(folder, nobody(), -1)
    assert f"the directory {folder} belongs to nobody" in safeio.trust_problem(path, os.stat(path))


# --- writing ----------------------------------------------------------------------------


def test_a_write_goes_through_one_directory_and_removes_what_a_killed_run_left(tmp_path):
    target = tmp_path / "groups.txt"
    target.write_bytes(b"old\n")
    leftover = tmp_path / ".groups.txt.ldapsync-0123456789ab.tmp"
    leftover.write_bytes(b"half a fi")
    other = tmp_path / ".other.txt.ldapsync-0123456789ab.tmp"  # another file's: not ours to remove
    other.write_bytes(b"x")
    planted = tmp_path / ".groups.txt.ldapsync-planted.tmp"  # not a name ldapsync gives
    planted.write_bytes(b"x")
    write_if_changed(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert not leftover.exists() and other.exists() and planted.exists()


def test_a_file_that_changed_since_the_plan_is_not_written(tmp_path):
    target = tmp_path / "groups.txt"
    target.write_bytes(b"edited meanwhile\n")
    with pytest.raises(WriteError, match="changed while this run was under way"):
        write_if_changed(target, b"new\n", expected=b"old\n")
    assert target.read_bytes() == b"edited meanwhile\n"
    assert write_if_changed(target, b"new\n", expected=b"edited meanwhile\n").changed


def test_a_fifo_at_the_target_is_refused_not_read(tmp_path):
    target = tmp_path / "groups.txt"
    os.mkfifo(target)
    with pytest.raises(WriteError, match="refusing to write .*groups.txt: it is a FIFO, not a regular file"):
        write_if_changed(target, b"new\n")


# --- the lock ---------------------------------------------------------------------------


def test_a_link_planted_at_the_lock_is_never_written_through(tmp_path, victim):
    lock = tmp_path / ".groups.txt.ldapsync.lock"
    lock.symlink_to(victim)
    with pytest.raises(UserError, match="is a symbolic link") as err, statelib.locked(lock, 0):
        pass
    assert err.value.exit_code == ExitCode.CANTCREAT
    assert victim.read_bytes() == VICTIM


def test_a_hard_link_at_the_lock_is_not_written(tmp_path, victim):
    lock = tmp_path / "ldapsync.lock"
    os.link(victim, lock)
    with pytest.raises(UserError, match="has other names"), statelib.locked(lock, 0):
        pass
    assert victim.read_bytes() == VICTIM


def test_a_lock_in_a_directory_others_can_write_is_warned_about(tmp_path, logged):
    shared = tmp_path / "prosody"
    shared.mkdir()
    shared.chmod(0o770)
    with statelib.locked(shared / "ldapsync.lock", 0):
        pass
    assert "is not safe from other accounts" in logged.text and "set state.path" in logged.text


def test_the_lock_goes_beside_the_state_file_by_default():
    base = ("ldap: {servers: ['ldaps://x']}\nusers: {base: 'dc=x'}\ngroups: {base: 'dc=x'}\n"
            "outputs: [{path: /var/lib/prosody/groups.txt}]\n")
    assert parse(base).lock_path == Path("/var/lib/prosody/.groups.txt.ldapsync.lock")
    config = parse(base + "state: {path: /var/lib/ldapsync/state.json}\n")
    assert config.lock_path == Path("/var/lib/ldapsync/state.json.lock")


# --- the state file ---------------------------------------------------------------------


@pytest.mark.parametrize(("content", "why"), [
    (b"\x00\xffnot json", "Invalid JSON"),
    (b"[1, 2]", "Input should be an object"),
    (b'{"runs_total": "many"}', "runs_total: Input should be a valid integer"),
    (b'{"finished": "yesterday"}', "Invalid isoformat string"),
    (b'{"consecutive_failures": -3}', "consecutive_failures is negative"),
    (b'{"counts": {"shared_groups": "7"}}', "counts.shared_groups is not a number"),
    (b'{"outputs": [{"member_lines": null}]}', "outputs[0].member_lines is not a number"),
])
def test_a_damaged_state_is_a_warning_and_a_new_record(tmp_path, logged, content, why):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    state, problem = statelib.read(path)
    assert state is None and why in problem
    recorded = statelib.record(path, time.time() - 1, time.time(), 0, None, {"shared_groups": 2}, [])
    assert recorded.runs_total == 1 and recorded.result == "success"
    assert "starting a new record" in logged.text
    assert statelib.read(path)[0] == recorded


def test_a_link_at_the_state_file_is_neither_read_nor_replaced(tmp_path, victim):
    path = tmp_path / "state.json"
    path.symlink_to(victim)
    assert "is a symbolic link" in statelib.read(path)[1]
    with pytest.raises(WriteError, match="symbolic link"):
        statelib.record(path, time.time(), time.time(), 0, None, {}, [])
    assert victim.read_bytes() == VICTIM and path.is_symlink()


def test_status_on_a_damaged_state_is_unknown_with_the_reason(tmp_path, capsys):
    config = tmp_path / "ldapsync.yaml"
    config.write_text("ldap: {servers: ['ldaps://x']}\nusers: {base: 'dc=x'}\ngroups: {base: 'dc=x'}\n"
                      f"outputs: [{{path: {tmp_path}/groups.txt}}]\nstate: {{path: {tmp_path}/state.json}}\n")
    (tmp_path / "state.json").write_text('{"last_success": 17}')
    code, out, err = cli(capsys, "status", "-c", config)
    assert code == 3 and not err
    assert out.startswith("LDAPSYNC UNKNOWN - the state file") and "is damaged (last_success" in out


# --- the model cache --------------------------------------------------------------------

OLD = GroupsModel.of([SharedGroup("Team", {"a@x": "Al", "b@x": "Bo"})])
NEW = GroupsModel.of([SharedGroup("Team", {"a@x": "Al", "b@x": "Bo", "c@x": "Cy"})])


def forged(tmp_path: Path) -> tuple[Path, bytes]:
    """A cache that lies: it says the file on disk (OLD) holds NEW, so that
    a run believing it would skip the write NEW needs."""
    data = render(OLD).encode()
    cache = modelcache.path_for(tmp_path / "state.json", tmp_path / "groups.txt")
    new_text = render(NEW)
    blob = modelcache.encode(parse_groups(new_text), data)
    cache.write_bytes(blob)
    cache.chmod(0o600)
    return cache, data


def test_a_cache_only_ldapsync_can_write_is_used(tmp_path):
    cache, data = forged(tmp_path)
    assert modelcache.load(cache, data).means(NEW)  # (the forgery works when it is trusted)


@pytest.mark.parametrize("how", ["file mode", "directory mode", "link"])
def test_a_cache_others_could_have_written_is_not_used(tmp_path, logged, how):
    cache, data = forged(tmp_path)
    if how == "file mode":
        cache.chmod(0o666)
    elif how == "directory mode":
        tmp_path.chmod(0o777)
    else:
        real = tmp_path / "elsewhere.model"
        cache.rename(real)
        cache.symlink_to(real)
    try:
        assert modelcache.load(cache, data) is None
    finally:
        tmp_path.chmod(0o700)
    assert "not using the cache" in logged.text and "reading the groups file instead" in logged.text


@root_only
def test_a_cache_of_another_account_is_not_used(tmp_path, logged):
    cache, data = forged(tmp_path)
    os.chown(cache, nobody(), -1)
    assert modelcache.load(cache, data) is None
    assert "belongs to nobody" in logged.text


# --- backups ----------------------------------------------------------------------------


def output_config(tmp_path: Path, outputs: list[dict]):
    lines = "".join(f"  - {json.dumps(o)}\n" for o in outputs)
    return parse("ldap: {servers: ['ldaps://x']}\nusers: {base: 'dc=x'}\ngroups: {base: 'dc=x'}\n"
                 f"outputs:\n{lines}state: {{path: {tmp_path}/state.json}}\n")


def put(output, data: bytes) -> None:
    write_if_changed(output.path, data, keep_previous=backups.saver(output), mode=output.mode)
    backups.prune(output)


def test_two_outputs_with_one_file_name_keep_their_own_backups(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared = tmp_path / "backups"
    shared.mkdir()
    config = output_config(tmp_path, [{"path": str(tmp_path / "a/groups.txt"), "backup_dir": str(shared)},
                                      {"path": str(tmp_path / "b/groups.txt"), "backup_dir": str(shared)}])
    a, b = config.outputs
    for n in range(3):
        put(a, f"a{n}\n".encode())
        put(b, f"b{n}\n".encode())
    assert [backups.read(x) for x in backups.listing(a)] == [b"a1\n", b"a0\n"]
    assert [backups.read(x) for x in backups.listing(b)] == [b"b1\n", b"b0\n"]
    assert a.tag != b.tag and all(a.tag in x.path.name for x in backups.listing(a))


def test_backups_are_pruned_per_output(tmp_path):
    shared = tmp_path / "backups"
    shared.mkdir()
    config = output_config(tmp_path, [{"path": str(tmp_path / "groups.txt"), "backup_dir": str(shared),
                                       "backups": 2},
                                      {"path": str(tmp_path / "x" / "groups.txt"), "backup_dir": str(shared)}])
    one, other = config.outputs
    (tmp_path / "x").mkdir()
    for n in range(3):
        put(other, f"other{n}\n".encode())
    for n in range(5):
        put(one, f"one{n}\n".encode())
    assert len(backups.listing(one)) == 2 and len(backups.listing(other)) == 2


def test_a_failed_replacement_takes_no_backup(tmp_path, monkeypatch):
    config = output_config(tmp_path, [{"path": str(tmp_path / "groups.txt"), "backups": 2}])
    output = config.outputs[0]
    put(output, b"v1\n")
    put(output, b"v2\n")
    put(output, b"v3\n")
    history = [backups.read(b) for b in backups.listing(output)]
    assert history == [b"v2\n", b"v1\n"]
    from ldapsync import writer

    real = os.replace

    def full_disk(src, dst, **kw):
        if dst == "groups.txt":
            raise OSError(28, os.strerror(28))
        return real(src, dst, **kw)

    monkeypatch.setattr(writer.os, "replace", full_disk)
    for _ in range(3):
        with pytest.raises(WriteError, match="No space left on device"):
            put(output, b"v4\n")
    monkeypatch.undo()
    assert (tmp_path / "groups.txt").read_bytes() == b"v3\n"
    assert [backups.read(b) for b in backups.listing(output)] == history
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".groups.txt")) == []


def test_a_backup_that_cannot_be_written_stops_the_write(tmp_path):
    config = output_config(tmp_path, [{"path": str(tmp_path / "groups.txt"),
                                       "backup_dir": str(tmp_path / "no-such-dir")}])
    output = config.outputs[0]
    (tmp_path / "groups.txt").write_bytes(b"v1\n")
    with pytest.raises(WriteError, match="no-such-dir"):
        put(output, b"v2\n")
    assert (tmp_path / "groups.txt").read_bytes() == b"v1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_links_and_other_outputs_files_are_not_backups(tmp_path, victim):
    config = output_config(tmp_path, [{"path": str(tmp_path / "groups.txt")}])
    output = config.outputs[0]
    put(output, b"v1\n")
    put(output, b"v2\n")
    planted = tmp_path / f"groups.txt.{output.tag}.29991231T235959000000Z.bak"
    planted.symlink_to(victim)
    assert [backups.read(b) for b in backups.listing(output)] == [b"v1\n"]


def test_rollback_picks_its_backup_after_the_run_under_way(tmp_path, capsys):
    """A rollback issued while a run holds the lock restores what was there
    before that run's write, not the version before."""
    config_path = tmp_path / "ldapsync.yaml"
    config_path.write_text(
        "ldap: {servers: ['ldaps://x']}\nusers: {base: 'dc=x'}\ngroups: {base: 'dc=x'}\n"
        f"outputs: [{{path: {tmp_path}/groups.txt}}]\nstate: {{path: {tmp_path}/state.json, lock_timeout: 20}}\n")
    config_path.chmod(0o600)
    config = output_config(tmp_path, [{"path": str(tmp_path / "groups.txt")}])
    output = config.outputs[0]
    put(output, b"v1\n")
    put(output, b"v2\n")
    holding, release = threading.Event(), threading.Event()

    def a_run():
        with statelib.locked(config.lock_path, 5):
            holding.set()
            release.wait(10)
            put(output, b"v3\n")  # the run writes v3 and keeps v2

    run = threading.Thread(target=a_run)
    run.start()
    holding.wait(5)
    threading.Timer(0.5, release.set).start()
    code, out, err = cli(capsys, "rollback", "-c", config_path)
    run.join()
    assert code == 0, err
    assert (tmp_path / "groups.txt").read_bytes() == b"v2\n"


# --- files named on the command line ----------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["check", "{fifo}"],
    ["check", "/dev/zero"],
    ["diff", "/dev/zero", "{file}"],
    ["diff", "{file}", "{fifo}"],
    ["preview", "--groups-file", "{fifo}", "alice@example.com"],
])
def test_inputs_that_are_not_regular_files_are_refused_at_once(tmp_path, capsys, argv):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "groups.txt").write_text("[Team]\nalice@example.com=Alice\n")
    names = {"fifo": fifo, "file": tmp_path / "groups.txt", "dir": tmp_path}
    started = time.monotonic()
    code, out, err = cli(capsys, *(a.format(**names) for a in argv))
    assert code == 66 and "not a regular file" in err and "Traceback" not in err
    assert time.monotonic() - started < 2


def test_a_personal_roster_that_is_a_device_is_bad_data(tmp_path, capsys):
    (tmp_path / "groups.txt").write_text("[Team]\nalice@example.com=Alice\n")
    code, _, err = cli(capsys, "preview", "--groups-file", tmp_path / "groups.txt", "--roster", "/dev/zero",
                       "alice@example.com")
    assert code == 65 and "/dev/zero is a device, not a regular file" in err


@pytest.mark.parametrize("path", ["/dev/zero", "{fifo}"])
def test_a_config_that_is_not_a_regular_file_is_a_config_error(tmp_path, capsys, path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = cli(capsys, "check", "-c", path.format(fifo=fifo, dir=tmp_path))
    assert code == 78 and "not a regular file" in err


@root_only
def test_a_config_of_another_account_is_refused(tmp_path, capsys):
    config = tmp_path / "ldapsync.yaml"
    config.write_text("ldap: {servers: ['ldaps://x']}\nusers: {base: 'dc=x'}\ngroups: {base: 'dc=x'}\n"
                      f"outputs: [{{path: {tmp_path}/groups.txt}}]\n")
    os.chown(config, nobody(), -1)
    code, _, err = cli(capsys, "check", "-c", config)
    assert code == 78 and "belongs to nobody, who could change it" in err


def test_check_names_a_state_or_lock_directory_others_can_write(tmp_path, capsys):
    shared = tmp_path / "prosody"
    shared.mkdir()
    config = tmp_path / "ldapsync.yaml"
    config.write_text("ldap: {servers: ['ldaps://x']}\nusers: {base: 'dc=x'}\ngroups: {base: 'dc=x'}\n"
                      f"outputs: [{{path: {shared}/groups.txt}}]\n")
    assert cli(capsys, "check", "-c", config)[0] == 0
    shared.chmod(0o770)  # the groups file's directory, writable by the prosody group
    code, out, _ = cli(capsys, "check", "-c", config)
    assert code == 1 and f"problem: the lock: the directory {shared} can be changed by other users" in out
    config.write_text(config.read_text() + f"state: {{path: {shared}/state.json}}\n")
    code, out, _ = cli(capsys, "check", "-c", config)
    assert code == 1 and "problem: state.path: the directory" in out

"""Writing a file atomically and only on change."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from ldapsync import writer
from ldapsync.errors import ExitCode, UserError
from ldapsync.writer import WriteError, WriteResult, write_if_changed

OLD = b"[Team]\nalice@example.com=Alice\n"
NEW = b"[Team]\nalice@example.com=Alice\nbob@example.com=Bob\n"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".ldapsync-" in p.name)


@pytest.fixture
def umask():
    """Set the umask for one test, and put the old one back."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def perms(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- creating, keeping, replacing ------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o000])
def test_new_file_gets_exactly_the_mode_whatever_the_umask(tmp_path, umask, mask):
    umask(mask)
    target = tmp_path / "groups.txt"
    result = write_if_changed(target, OLD)
    assert result == WriteResult(target, True, None, len(OLD))
    assert target.read_bytes() == OLD
    assert perms(target) == 0o640
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o664])
def test_other_modes_are_applied_exactly(tmp_path, umask, mode):
    umask(0o077)
    target = tmp_path / "groups.txt"
    write_if_changed(str(target), OLD, mode=mode)
    assert perms(target) == mode


def test_unchanged_content_touches_nothing(tmp_path):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    os.chmod(target, 0o604)  # a different mode is left alone too: only bytes count
    past = time.time_ns() - 10**9 * 3600
    os.utime(target, ns=(past, past))
    before = os.stat(target)
    result = write_if_changed(target, OLD)
    after = os.stat(target)
    assert result == WriteResult(target, False, OLD, len(OLD))
    assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_ino, before.st_mtime_ns, before.st_ctime_ns)
    assert perms(target) == 0o604
    assert leftovers(tmp_path) == []


def test_changed_content_replaces_the_file_with_a_new_inode(tmp_path):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    os.chmod(target, 0o600)
    old_inode = os.stat(target).st_ino
    with open(target, "rb") as keep:  # a reader that opened the old file still sees it whole
        result = write_if_changed(target, NEW)
        assert keep.read() == OLD
    assert result.changed and result.previous == OLD and result.size == len(NEW)
    assert target.read_bytes() == NEW
    assert os.stat(target).st_ino != old_inode
    assert perms(target) == 0o640
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.txt"]


def test_empty_content_and_empty_file(tmp_path):
    target = tmp_path / "groups.txt"
    assert write_if_changed(target, b"").changed  # no file -> an empty file is a change
    assert target.read_bytes() == b""
    assert write_if_changed(target, b"") == WriteResult(target, False, b"", 0)


def test_large_content_is_written_whole(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    target = tmp_path / "groups.txt"
    assert write_if_changed(target, data).size == len(data)
    assert target.read_bytes() == data


def test_partial_writes_are_continued(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def short_write(fd, buf):
        calls.append(len(buf))
        return real_write(fd, bytes(buf)[:3])

    monkeypatch.setattr(writer.os, "write", short_write)
    target = tmp_path / "groups.txt"
    write_if_changed(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == NEW
    assert len(calls) == -(-len(NEW) // 3)


def test_str_data_is_refused(tmp_path):
    with pytest.raises(TypeError):
        write_if_changed(tmp_path / "groups.txt", "text")  # type: ignore[arg-type]


# --- dry run ------------------------------------------------------------------------------


def test_dry_run_reports_but_never_writes(tmp_path):
    target = tmp_path / "groups.txt"
    assert write_if_changed(target, OLD, dry_run=True) == WriteResult(target, True, None, len(OLD))
    assert not target.exists()

    target.write_bytes(OLD)
    before = os.stat(target)
    assert write_if_changed(target, NEW, dry_run=True) == WriteResult(target, True, OLD, len(NEW))
    assert write_if_changed(target, OLD, dry_run=True) == WriteResult(target, False, OLD, len(OLD))
    after = os.stat(target)
    assert target.read_bytes() == OLD
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.txt"]


# --- failures leave the old file and no temporary file ------------------------------------


def assert_write_error(exc: pytest.ExceptionInfo[WriteError], target: Path, reason: str) -> None:
    assert isinstance(exc.value, UserError)
    assert exc.value.exit_code == ExitCode.CANTCREAT == 73
    message = str(exc.value)
    assert "\n" not in message
    assert str(target) in message
    assert reason in message


def failing(err: int):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    return fail


@pytest.mark.parametrize(
    ("function", "err"),
    [
        ("write", errno.ENOSPC),
        ("fsync", errno.ENOSPC),
        ("fsync", errno.EIO),
        ("fchmod", errno.EPERM),
        ("replace", errno.EXDEV),
    ],
)
def test_a_failure_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch, function, err):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    before = os.stat(target)
    monkeypatch.setattr(writer.os, function, failing(err))
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW)
    monkeypatch.undo()
    assert_write_error(exc, target, os.strerror(err))
    assert str(exc.value) == f"cannot write {target}: {os.strerror(err)}"
    assert target.read_bytes() == OLD
    assert os.stat(target).st_ino == before.st_ino
    assert leftovers(tmp_path) == []


def test_no_space_left_message(tmp_path, monkeypatch):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    monkeypatch.setattr(writer.os, "write", failing(errno.ENOSPC))
    with pytest.raises(WriteError, match=r"^cannot write .*groups\.txt: No space left on device$"):
        write_if_changed(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_a_failure_for_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "groups.txt"
    monkeypatch.setattr(writer.os, "fsync", failing(errno.EIO))
    with pytest.raises(WriteError):
        write_if_changed(target, NEW)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_also_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_if_changed(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_directory_is_a_regular_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    target = tmp_path / "plain" / "groups.txt"
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW)
    assert_write_error(exc, target, "Not a directory")


def test_directory_missing(tmp_path):
    target = tmp_path / "nowhere" / "groups.txt"
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW)
    assert_write_error(exc, target, "No such file or directory")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses directory permissions")
def test_read_only_directory(tmp_path):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(WriteError) as exc:
            write_if_changed(target, NEW)
    finally:
        tmp_path.chmod(0o755)
    assert_write_error(exc, target, "Permission denied")
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_target_is_a_directory(tmp_path):
    target = tmp_path / "groups.txt"
    target.mkdir()
    with pytest.raises(WriteError, match="not a regular file") as exc:
        write_if_changed(target, NEW)
    assert_write_error(exc, target, "not a regular file")
    assert target.is_dir()


# --- symbolic links -------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_symlink_target_is_refused_not_replaced(tmp_path, dry_run):
    real = tmp_path / "real.txt"
    real.write_bytes(OLD)
    target = tmp_path / "groups.txt"
    target.symlink_to(real)
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW, dry_run=dry_run)
    assert_write_error(exc, target, "symbolic link")
    assert target.is_symlink() and os.readlink(target) == str(real)
    assert real.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_a_dangling_symlink_target_is_refused(tmp_path):
    target = tmp_path / "groups.txt"
    target.symlink_to(tmp_path / "missing.txt")
    with pytest.raises(WriteError, match="symbolic link"):
        write_if_changed(target, NEW)
    assert not (tmp_path / "missing.txt").exists()
    assert target.is_symlink()


def test_temp_names_are_random_and_hidden_next_to_the_target(tmp_path, monkeypatch):
    names = []
    real_replace = os.replace

    def spy(src, dst, **dir_fds):
        names.append(tmp_path / src)  # relative to the directory's descriptor
        return real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(writer.os, "replace", spy)
    target = tmp_path / "groups.txt"
    write_if_changed(target, OLD)
    write_if_changed(target, NEW)
    monkeypatch.undo()
    assert len(names) == 2 and names[0] != names[1]
    for name in names:
        assert name.parent == tmp_path
        assert name.name.startswith(".groups.txt.ldapsync-") and name.name.endswith(".tmp")


def test_temp_is_opened_exclusively_without_following_links():
    for flag in (os.O_CREAT, os.O_EXCL, os.O_NOFOLLOW, os.O_CLOEXEC, os.O_WRONLY):
        assert writer._TEMP_FLAGS & flag == flag


def test_a_symlink_planted_at_the_temp_name_is_not_followed(tmp_path, monkeypatch):
    """An attacker who guesses (here: is told) the next temporary name and
    plants a link there gets nothing: the link is neither followed nor
    replaced, and a fresh name is used instead."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    os.chmod(victim, 0o600)
    tokens = iter(["planted1", "planted2", "fresh"])
    monkeypatch.setattr(writer.secrets, "token_hex", lambda n: next(tokens))
    for token in ("planted1", "planted2"):
        (tmp_path / f".groups.txt.ldapsync-{token}.tmp").symlink_to(victim)
    target = tmp_path / "groups.txt"
    write_if_changed(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == NEW and not target.is_symlink()
    assert victim.read_bytes() == b"precious\n" and perms(victim) == 0o600
    for token in ("planted1", "planted2"):
        link = tmp_path / f".groups.txt.ldapsync-{token}.tmp"
        assert link.is_symlink() and os.readlink(link) == str(victim)
    assert not (tmp_path / ".groups.txt.ldapsync-fresh.tmp").exists()


def test_gives_up_when_every_temp_name_is_taken(tmp_path, monkeypatch):
    (tmp_path / ".groups.txt.ldapsync-same.tmp").write_bytes(b"someone else's\n")
    monkeypatch.setattr(writer.secrets, "token_hex", lambda n: "same")
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW)
    monkeypatch.undo()
    assert_write_error(exc, target, "temporary file")
    assert target.read_bytes() == OLD
    assert (tmp_path / ".groups.txt.ldapsync-same.tmp").read_bytes() == b"someone else's\n"


# --- owner and group ------------------------------------------------------------------------

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")


def nobody() -> tuple[str, int, str, int]:
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    for name in ("nogroup", "nobody"):
        try:
            group = grp.getgrnam(name)
            return user.pw_name, user.pw_uid, group.gr_name, group.gr_gid
        except KeyError:
            continue
    pytest.skip("no group 'nogroup' or 'nobody'")


@root_only
def test_owner_and_group_by_name(tmp_path):
    user, uid, group, gid = nobody()
    target = tmp_path / "groups.txt"
    write_if_changed(target, OLD, owner=user, group=group)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert perms(target) == 0o640


@root_only
def test_owner_and_group_by_number(tmp_path):
    _, uid, _, gid = nobody()
    target = tmp_path / "groups.txt"
    write_if_changed(target, OLD, owner=uid, group=gid, mode=0o644)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (uid, gid)
    assert perms(target) == 0o644
    # a numeric string that is no user's name counts as a number too
    write_if_changed(target, NEW, owner="54321", group="54322")
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (54321, 54322)


@root_only
def test_group_alone_keeps_the_owner(tmp_path):
    _, _, group, gid = nobody()
    target = tmp_path / "groups.txt"
    write_if_changed(target, OLD, group=group)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (os.geteuid(), gid)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may give a file away")
def test_chown_not_permitted(tmp_path):
    user, _, _, _ = nobody()
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW, owner=user)
    assert_write_error(exc, target, "Operation not permitted")
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_chown_failure_injected(tmp_path, monkeypatch):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    monkeypatch.setattr(writer.os, "fchown", failing(errno.EPERM))
    with pytest.raises(WriteError) as exc:
        write_if_changed(target, NEW, owner=0)
    monkeypatch.undo()
    assert_write_error(exc, target, "Operation not permitted")
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("key", "what"), [("owner", "owner"), ("group", "group")])
def test_unknown_names_are_refused_before_anything_happens(tmp_path, key, what):
    target = tmp_path / "groups.txt"
    target.write_bytes(OLD)
    name = "no-such-name-ldapsync"
    for data in (OLD, NEW):  # also when the content is unchanged: a config error shows every run
        with pytest.raises(WriteError) as exc:
            write_if_changed(target, data, **{key: name})
        assert exc.value.exit_code == ExitCode.CANTCREAT
        assert f"unknown {what} '{name}'" in str(exc.value)
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.txt"]

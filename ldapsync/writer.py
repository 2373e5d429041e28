"""Put a file in place safely: the groups file, and ldapsync's own state.

Prosody reads the groups file only when mod_groups loads, and a missing or
half-written file unloads the module (every shared contact disappears), so
:func:`write_if_changed` replaces the file atomically (a temporary file in the
same directory, fsynced, then renamed over the old one) and only when the
bytes differ: an unchanged file keeps its inode and mtime, so nothing watching
it fires.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import pwd
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ldapsync import safeio
from ldapsync.errors import ExitCode, UserError

log = logging.getLogger(__name__)

__all__ = [
    "ANY",
    "WriteError",
    "WriteResult",
    "read_current",
    "write_if_changed",
]

_TEMP_ATTEMPTS = 100
# Not following a symlink planted at the temporary name is the point of
# O_EXCL | O_NOFOLLOW; O_CLOEXEC keeps the descriptor out of a post-change command.
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_TOKEN_BYTES = 6


def _temp_pattern(name: str) -> re.Pattern[str]:
    """The names :func:`_create_temp` gives the temporary files of ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.ldapsync-[0-9a-f]{{{2 * _TEMP_TOKEN_BYTES}}}\.tmp\Z")


class WriteError(UserError):
    """The output file could not be put in place; the old file is untouched."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.CANTCREAT)


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_if_changed` did (or, in a dry run, would do).

    ``previous`` is the old content, ``None`` when there was no file.
    """

    path: Path
    changed: bool
    previous: bytes | None
    size: int


def _os_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


def _uid(owner: str | int) -> int:
    if isinstance(owner, int):
        return owner
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        if owner.isdigit():
            return int(owner)
        raise WriteError(f"unknown owner {owner!r}: no such user") from None


def _gid(group: str | int) -> int:
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise WriteError(f"unknown group {group!r}: no such group") from None


def _read_current(folder: int, path: Path, kind: str) -> bytes | None:
    """The target's bytes, or None when it does not exist; a link, a FIFO or
    anything but a regular file is refused, so that it is never read through
    or silently replaced."""
    try:
        return safeio.read_bytes(path.name, kind, dir_fd=folder, shown="it")
    except FileNotFoundError:
        return None
    except safeio.UnsafeFile as exc:
        raise WriteError(f"refusing to write {path}: {exc}") from None
    except OSError as exc:
        raise _os_error(path, exc) from None


def read_current(path: Path | str, kind: str = "groups file") -> bytes | None:
    """The bytes of the file ldapsync is about to replace (None: there is
    none), read as :func:`write_if_changed` reads it."""
    path = Path(path)
    try:
        with safeio.directory(path.parent) as folder:
            return _read_current(folder, path, kind)  # an unsafe file is a WriteError from there
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(path, exc) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # never for a regular file, but do not loop forever
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[n:]


def _create_temp(folder: int, name: str, mode: int) -> tuple[str, int]:
    """A new file next to the target under an unguessable name; O_EXCL and
    O_NOFOLLOW make a planted file or symlink an error, never a write through."""
    for _ in range(_TEMP_ATTEMPTS):
        temp = f".{name}.ldapsync-{secrets.token_hex(_TEMP_TOKEN_BYTES)}.tmp"
        try:
            return temp, os.open(temp, _TEMP_FLAGS, mode, dir_fd=folder)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no unused temporary file name")


def _remove_leftovers(folder: int, name: str) -> None:
    """Remove the temporary files of ``name`` that a killed run left behind.
    Writers of one file hold one lock (see state.locked), so no temporary
    file of a write under way is among them; unlink never follows a link."""
    pattern = _temp_pattern(name)
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if pattern.match(entry):
            try:
                os.unlink(entry, dir_fd=folder)
                log.info("removed %s, left behind by an interrupted run", entry)
            except OSError:
                pass


def _fsync_directory(folder: int) -> None:
    """Make the rename itself durable; a file system that cannot sync a
    directory (EINVAL) has nothing to flush."""
    try:
        os.fsync(folder)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


#: ``expected`` of :func:`write_if_changed` when any current content will do.
ANY = object()


def write_if_changed(
    path: Path | str,
    data: bytes,
    *,
    mode: int = 0o640,
    owner: str | int | None = None,
    group: str | int | None = None,
    dry_run: bool = False,
    expected: bytes | None | object = ANY,
    keep_previous: Callable[[bytes], Path | None] | None = None,
    kind: str = "groups file",
) -> WriteResult:
    """Replace ``path`` with ``data`` atomically, and only if the bytes differ.

    The new file gets exactly ``mode`` (the umask plays no part) and, when
    given, ``owner``/``group`` (names or numeric ids).  Everything happens
    relative to one descriptor of the directory; the current file is read
    without following a link, and temporary files an interrupted run left
    are removed first.  ``expected``: the content the caller planned the
    change against; if the file holds anything else now, nothing is written.
    ``keep_previous(old bytes)`` saves the file about to be replaced once the
    new one is ready, and returns the path it saved to, which is removed
    again if the replacement then fails.  On any failure the old file is
    left byte for byte as it was, no temporary file remains, and
    :class:`WriteError` (exit code 73) says which path and why.  ``dry_run``
    only reports whether the file would change.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {mode:#o} is not a file mode")
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise WriteError(f"cannot write {path}: not a file name")
    # Resolve names first: a wrong name in the configuration should fail
    # every run, not only the runs that happen to change the file.
    uid = -1 if owner is None else _uid(owner)
    gid = -1 if group is None else _gid(group)
    try:
        with safeio.directory(path.parent) as folder:
            return _write_in(folder, path, data, mode, uid, gid, dry_run, expected, keep_previous, kind)
    except OSError as exc:
        raise _os_error(path, exc) from None


def _write_in(folder: int, path: Path, data: bytes, mode: int, uid: int, gid: int, dry_run: bool,
              expected: bytes | None | object, keep_previous: Callable[[bytes], Path | None] | None,
              kind: str) -> WriteResult:
    name = path.name
    previous = _read_current(folder, path, kind)
    if expected is not ANY and previous != expected:
        raise WriteError(f"not writing {path}: it changed while this run was under way (another program "
                         "wrote it); nothing written, run again")
    if previous == data:
        return WriteResult(path, False, previous, len(data))
    if dry_run:
        return WriteResult(path, True, previous, len(data))

    _remove_leftovers(folder, name)
    temp: str | None = None
    kept: Path | None = None
    fd = -1
    try:
        temp, fd = _create_temp(folder, name, mode)
        if uid != -1 or gid != -1:
            # Before fchmod: chown may clear set-id bits, and it fails early.
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if keep_previous is not None and previous is not None:
            kept = keep_previous(previous)
        os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
        temp = None
        kept = None
    except OSError as exc:
        raise _os_error(path, exc) from None
    finally:
        if fd != -1:
            os.close(fd)
        if temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=folder)
        if kept is not None:  # the backup of a replacement that did not happen
            with contextlib.suppress(OSError):
                os.unlink(kept)
    try:
        _fsync_directory(folder)
    except OSError as exc:
        raise WriteError(
            f"cannot write {path}: the new file is in place but its directory could not "
            f"be synced, so a crash may bring back the old one: {exc.strerror or exc}"
        ) from None
    return WriteResult(path, True, previous, len(data))

"""Opening files that another local account may have tampered with.

ldapsync often runs as root, and the groups file lives in a directory that
other accounts can write (Prosody's data directory, writable by the
``prosody`` group).  Every file ldapsync reads or writes goes through this
module, with the same rules (docs/reliability.md has the threat model):

- **No link is followed where it could be planted.**  Files ldapsync finds
  by itself (the groups file, its temporary file and backups, the lock, the
  state file and the model cache) are opened with ``O_NOFOLLOW``, relative
  to a descriptor of their directory.  A path that a person named (``-c
  CONFIG``, the password file, ``check FILE``) may be a link: following it
  is what they asked for, and trust is then judged on what it leads to.
- **Regular files only.**  Files are opened ``O_NONBLOCK`` (a FIFO cannot
  hang the open) and checked with ``fstat`` before any read: a FIFO,
  ``/dev/zero`` or a directory is an error that says so.
- **Bounded sizes.**  Nothing is read past its limit (:data:`LIMITS`).
- **Trust where the content decides what ldapsync does** (the config, the
  bind password, the model cache): like ssh's ``StrictModes``, the file and
  every directory above it must be owned by root or by the account running
  ldapsync, and writable by nobody else (a sticky directory such as /tmp
  counts as safe: others cannot replace what is in it).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LIMITS", "UnsafeFile", "directory", "folder_problem", "open_regular", "read_bytes", "trust_problem"]

MiB = 1 << 20

#: The most ldapsync reads of each kind of file, in bytes: several times what
#: a company-sized directory gives, yet a bound, so that a huge or endless
#: file fails at once instead of filling the memory.
LIMITS = {
    "config": 1 * MiB,
    "password": 64 * 1024,
    "groups file": 512 * MiB,
    "roster": 64 * MiB,
    "state": 16 * MiB,
    "cache": 1024 * MiB,
    "snapshot": 4096 * MiB,
}

_NOFOLLOW = os.O_NOFOLLOW
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeFile(Exception):
    """A file that ldapsync refuses to use; the message says which and why."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path | str, flags: int = _READ, *, follow: bool = False, dir_fd: int | None = None,
                 mode: int = 0o600, shown: Path | str | None = None) -> int:
    """A descriptor of the regular file at ``path`` (relative to ``dir_fd``
    when given).  ``shown`` is the path used in messages.  Raises
    FileNotFoundError when there is none, :class:`UnsafeFile` for a link
    (unless ``follow``) or anything but a regular file, OSError otherwise."""
    shown = path if shown is None else shown
    try:
        fd = os.open(path, flags | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else _NOFOLLOW), mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise UnsafeFile(f"{shown} is a symbolic link; ldapsync does not follow links here (another account "
                             "could have planted it): give the path of the file itself") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # a directory opened for writing; a socket
            raise UnsafeFile(f"{shown} is not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{shown} is {_kind(st.st_mode)}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int, shown: Path | str) -> bytes:
    """All of ``fd``, refusing more than ``limit`` bytes."""
    size = os.fstat(fd).st_size
    if size > limit:
        raise UnsafeFile(f"{shown} is {size:,} bytes, more than ldapsync reads ({limit:,}); is it the right file?")
    chunks = []
    total = 0
    while chunk := os.read(fd, 1 << 20):
        total += len(chunk)
        if total > limit:  # grew while being read
            raise UnsafeFile(f"{shown} is more than {limit:,} bytes, more than ldapsync reads")
        chunks.append(chunk)
    return b"".join(chunks)


def read_bytes(path: Path | str, kind: str, *, follow: bool = False, trusted: bool = False,
               secret: bool = False, dir_fd: int | None = None, shown: Path | str | None = None) -> bytes:
    """The content of the regular file ``path``, at most ``LIMITS[kind]``
    bytes.  ``trusted``: the file must pass :func:`trust_problem`;
    ``secret``: nobody but its owner and group may read it either.  Raises
    FileNotFoundError, :class:`UnsafeFile` or OSError."""
    shown = path if shown is None else shown
    fd = open_regular(path, follow=follow, dir_fd=dir_fd, shown=shown)
    try:
        if trusted:
            problem = trust_problem(Path(path), os.fstat(fd), secret=secret)
            if problem:
                raise UnsafeFile(problem)
        return read_fd(fd, LIMITS[kind], shown)
    finally:
        os.close(fd)


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def trust_problem(path: Path, st: os.stat_result, *, secret: bool = False) -> str | None:
    """Why the file ``path`` (whose ``fstat`` is ``st``) cannot be trusted,
    or None: it and every directory above it must be owned by root or by
    this account and writable by no one else; a ``secret`` must not be
    readable by others either."""
    mode = stat.S_IMODE(st.st_mode)
    if not _trusted_owner(st.st_uid):
        return (f"{path} belongs to {_owner_name(st.st_uid)}, who could change it; it must belong to root or to "
                f"the account running ldapsync ({_owner_name(os.geteuid())})")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} can be changed by other users (mode {mode:04o}); run 'chmod go-w {path}'"
    if secret and mode & stat.S_IROTH:
        return f"{path} holds a password but other users can read it (mode {mode:04o}); run 'chmod 600 {path}'"
    for folder in _folders(path):
        problem = folder_problem(folder, path)
        if problem:
            return problem
    return None


def folder_problem(folder: Path, path: Path | str) -> str | None:
    """Why another account could replace ``path`` in the directory
    ``folder``, or None: it must belong to root or this account and be
    writable by nobody else, unless it is sticky (as /tmp is)."""
    try:
        st = os.stat(folder)
    except OSError as exc:
        return f"cannot check the directory {folder}: {exc.strerror or exc}"
    mode = stat.S_IMODE(st.st_mode)
    if not _trusted_owner(st.st_uid):
        return (f"the directory {folder} belongs to {_owner_name(st.st_uid)}, who could replace {path}; "
                "keep it in a directory of root or of the account running ldapsync")
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        return (f"the directory {folder} can be changed by other users (mode {mode:04o}), who could replace "
                f"{path}; run 'chmod go-w {folder}'")
    return None


def _folders(path: Path) -> Iterator[Path]:
    """The directories a lookup of ``path`` goes through, as given and as
    the links in it resolve: either could be swapped by their owner."""
    seen = set()
    for start in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
        for folder in start.parents:
            if folder not in seen:
                seen.add(folder)
                yield folder


@contextmanager
def directory(path: Path) -> Iterator[int]:
    """A descriptor of the directory ``path``, so that everything done in it
    (read, create, rename, sync) happens in that one directory even if its
    name is swapped meanwhile."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)

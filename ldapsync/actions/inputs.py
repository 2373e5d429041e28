"""Groups files a person names on the command line: read as Prosody would
read them, with a clear error for one that is missing or is not a file."""

from __future__ import annotations

from collections.abc import Callable

from ldapsync import groupsfile, safeio
from ldapsync.errors import ExitCode, UserError
from ldapsync.speed import ChildFailed, Parallel


def read_groups(path: str) -> groupsfile.GroupsFile:
    """The file at ``path`` (a link to one will do), parsed."""
    try:
        return groupsfile.read(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file", ExitCode.NOINPUT) from None
    except safeio.UnsafeFile as exc:
        raise UserError(f"cannot read {exc}", ExitCode.NOINPUT) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}", ExitCode.NOINPUT) from None


def read_both(read_old: Callable[[], groupsfile.GroupsFile],
              read_new: Callable[[], groupsfile.GroupsFile]) -> tuple[groupsfile.GroupsFile, groupsfile.GroupsFile]:
    """Two groups files, the old one read by a worker process on the other
    core while this one reads the new: parsing a large file costs several
    times what sending its reading back does."""
    job = Parallel(read_old)
    try:
        new = read_new()
    except BaseException:
        job.discard()
        raise
    try:
        return job.result(), new
    except ChildFailed as exc:
        raise UserError(f"reading the old file failed: {exc}", ExitCode.SOFTWARE) from None

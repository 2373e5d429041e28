"""What a person names on the command line: groups files, read as Prosody
would read them (with a clear error for one that is missing or is not a
file), and the output a command is about."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ldapsync import groupsfile, safeio
from ldapsync import jid as jidlib
from ldapsync.errors import ExitCode, UserError
from ldapsync.speed import ChildFailed, Parallel

if TYPE_CHECKING:
    from ldapsync.config import Config, Output


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


def pick_output(config: Config, output_path: str | None, user: str | None) -> Output:
    """The output named by ``output_path``; else the one for ``user``'s host; else the first."""
    if output_path:
        for o in config.outputs:
            if str(o.path) == output_path:
                return o
        raise UserError(f"--output {output_path}: no such output in the config", ExitCode.USAGE)
    if user and len(config.outputs) > 1:
        domain = user.split("@", 1)[-1]
        for o in config.outputs:
            if o.host and jidlib.prep(o.host) == domain:
                return o
    return config.outputs[0]

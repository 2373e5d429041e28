"""Earlier versions of a groups file, kept for ``ldapsync rollback``.

Each output has its own backups, named after the file and a stable id of its
path (``groups.txt.<id>.<time>.bak``), so that two outputs with the same
file name can share a ``backup_dir`` without one's rollback restoring the
other's file.  A backup is taken only once the new file is ready to replace
the old one, and removed again if the replacement fails, so failed runs
never rotate the real history out.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ldapsync import safeio
from ldapsync.config import Output
from ldapsync.errors import ExitCode, UserError
from ldapsync.writer import write_if_changed

log = logging.getLogger(__name__)

_STAMP = r"(\d{8}T\d{6}\d{6}Z)"
_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class Backup:
    number: int  # 1 = the newest
    path: Path
    taken: datetime
    size: int


def directory(output: Output) -> Path:
    return output.backup_dir or output.path.parent


def _pattern(output: Output) -> re.Pattern[str]:
    """The names of this output's backups; backups named before outputs had
    ids (``groups.txt.<time>.bak``) count only beside the file itself, where
    no other output can have left them."""
    name = re.escape(output.path.name)
    legacy = rf"|{name}\.{_STAMP}\.bak" if output.backup_dir is None else ""
    return re.compile(rf"(?:{name}\.{output.tag}\.{_STAMP}\.bak{legacy})\Z")


def listing(output: Output) -> list[Backup]:
    """The backups of ``output``, newest first (regular files only)."""
    folder = directory(output)
    pattern = _pattern(output)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UserError(f"cannot list the backups in {folder}: {exc.strerror or exc}", ExitCode.NOINPUT) from None
    found = []
    for entry in names:
        m = pattern.match(entry)
        if m is None:
            continue
        stamp = m.group(1) or m.group(2)
        try:
            st = os.lstat(folder / entry)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):  # a link or anything else planted here is not a backup
            found.append((stamp, entry, st.st_size))
    found.sort(reverse=True)
    return [Backup(i, folder / entry, datetime.strptime(stamp, _FORMAT).replace(tzinfo=UTC), size)
            for i, (stamp, entry, size) in enumerate(found, 1)]


def saver(output: Output) -> Callable[[bytes], Path | None] | None:
    """What :func:`writer.write_if_changed` calls to keep the file it is
    about to replace (None: no backups for this output)."""
    if output.backups == 0:
        return None

    def keep(data: bytes) -> Path:
        stamp = datetime.fromtimestamp(time.time(), UTC).strftime(_FORMAT)
        target = directory(output) / f"{output.path.name}.{output.tag}.{stamp}.bak"
        write_if_changed(target, data, mode=output.mode, owner=output.owner, group=output.group)
        return target

    return keep


def prune(output: Output) -> None:
    """Drop this output's backups beyond ``output.backups``."""
    for old in listing(output)[output.backups:]:
        try:
            old.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UserError(f"cannot remove the old backup {old.path}: {exc.strerror}", ExitCode.CANTCREAT) from None


def prune_quietly(output: Output) -> None:
    """:func:`prune` after a write: the file is in place, so a backup that
    cannot be removed is a warning, not a failed run."""
    try:
        prune(output)
    except UserError as exc:
        log.warning("%s", exc)


def pick(output: Output, number: int) -> Backup:
    backups = listing(output)
    if not backups:
        raise UserError(f"{output.path}: no backups in {directory(output)}", ExitCode.NOINPUT)
    if not 1 <= number <= len(backups):
        raise UserError(f"{output.path}: no backup number {number}; there are {len(backups)} "
                        "(ldapsync rollback --list)", ExitCode.USAGE)
    return backups[number - 1]


def read(backup: Backup) -> bytes:
    """The content of ``backup``, read without following a link."""
    try:
        return safeio.read_bytes(backup.path, "groups file")
    except (OSError, safeio.UnsafeFile) as exc:
        raise UserError(f"cannot read the backup {backup.path}: {getattr(exc, 'strerror', None) or exc}",
                        ExitCode.NOINPUT) from None

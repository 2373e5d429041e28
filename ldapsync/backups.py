"""Earlier versions of a groups file, kept for ``ldapsync rollback``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ldapsync.config import Output
from ldapsync.errors import ExitCode, UserError
from ldapsync.writer import write_if_changed

_STAMP = re.compile(r"\.(\d{8}T\d{6}\d{6}Z)\.bak\Z")


@dataclass(frozen=True)
class Backup:
    number: int  # 1 = the newest
    path: Path
    taken: datetime


def directory(output: Output) -> Path:
    return output.backup_dir or output.path.parent


def listing(output: Output) -> list[Backup]:
    """The backups of ``output``, newest first."""
    prefix = output.path.name + "."
    found = []
    folder = directory(output)
    if not folder.is_dir():
        return []
    for p in folder.iterdir():
        if p.name.startswith(prefix):
            m = _STAMP.search(p.name)
            if m and p.name == prefix + m.group(1) + ".bak":
                found.append((m.group(1), p))
    found.sort(reverse=True)
    return [Backup(i, p, datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc))
            for i, (stamp, p) in enumerate(found, 1)]


def keep(output: Output, data: bytes) -> Path | None:
    """Save ``data`` (the file about to be replaced) as the newest backup and
    drop those beyond ``output.backups``."""
    if output.backups == 0:
        return None
    folder = directory(output)
    stamp = datetime.fromtimestamp(time.time(), timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{output.path.name}.{stamp}.bak"
    write_if_changed(target, data, mode=output.mode, owner=output.owner, group=output.group)
    for old in listing(output)[output.backups:]:
        try:
            old.path.unlink()
        except OSError as exc:
            raise UserError(f"cannot remove the old backup {old.path}: {exc.strerror}", ExitCode.CANTCREAT) from None
    return target


def pick(output: Output, number: int) -> Backup:
    backups = listing(output)
    if not backups:
        raise UserError(f"{output.path}: no backups in {directory(output)}", ExitCode.NOINPUT)
    if not 1 <= number <= len(backups):
        raise UserError(f"{output.path}: no backup number {number}; there are {len(backups)} "
                        "(ldapsync rollback --list)", ExitCode.USAGE)
    return backups[number - 1]

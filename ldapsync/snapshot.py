"""The directory as the last run read it, kept beside the state file.

An incremental run asks the directory only what changed since the last
run (see :mod:`ldapsync.directory.changes`) and applies those changes to
this copy, then maps it exactly as a full read.  The copy holds each entry
of each search a run makes (users, groups, disabled users) by its stable
id (OpenLDAP's entryUUID, AD's objectGUID, 389-ds's nsUniqueId), with only the attributes ldapsync asked for, in
the order the server sent them, plus the marker to ask "what changed since"
with next time.

It decides what the next run writes, so it is trusted as the model cache
is (see :mod:`ldapsync.modelcache`): the file and every directory above it
must belong to root or to the account running ldapsync and be writable by
nobody else, and it is written owner-only, since it holds the directory's
data.  It is versioned and checksummed, and names the config it was read
for: a copy of another format, of another config or another server, or a
damaged one, is never used: the run reads everything instead and says why.

The file starts with a small JSON header (what a poll needs to tell that
nothing changed, without loading the entries), then the entries in
``marshal`` form.
"""

from __future__ import annotations

import hashlib
import json
import logging
import marshal
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldapsync import __version__, safeio
from ldapsync.directory import Entry
from ldapsync.writer import write_if_changed

log = logging.getLogger(__name__)

_MAGIC = b"ldapsync directory snapshot\n"
# the snapshot's layout, the ldapsync that wrote it (which decides what an
# entry holds) and Python's (whose marshal format may change)
FORMAT = f"1 ldapsync-{__version__} py{sys.version_info[0]}.{sys.version_info[1]}"
_HEADER_LIMIT = 1 << 20


def path_for(state_path: Path | None) -> Path | None:
    """Where the snapshot lives: beside the state file (none without one)."""
    return None if state_path is None else state_path.with_name(state_path.name + ".snapshot")


class Unusable(Exception):
    """Why a snapshot cannot be used (a full read follows, saying so)."""


@dataclass
class Header:
    """What a snapshot says of itself, readable without its entries."""

    format: str
    fingerprint: str  # of the searches it answers (bases, filters, attributes)
    config_hash: str  # of the whole config: the same config, directory and files make the same output
    method: str  # how changes are asked for (ldapsync.directory.changes)
    server: str  # the URL of the server it was read from
    marker: dict[str, Any]  # where the directory stood, in the method's terms
    saved_at: float
    full_read_at: float  # when the last full read behind it was made
    counts: dict[str, Any] = field(default_factory=dict)  # the last run's Counts
    outputs: dict[str, list[int]] = field(default_factory=dict)  # path -> (size, mtime_ns, inode) once written
    entries_sha256: str = ""
    entries_length: int = 0


@dataclass
class Snapshot:
    """A header and, for each search, its entries by id in the server's order."""

    header: Header
    entries: dict[str, dict[str, Entry]]
    payload: bytes | None = None  # the entries encoded (:meth:`freeze`)

    def apply(self, name: str, changed: dict[str, Entry], deleted: Iterable[str],
              present: set[str] | None) -> tuple[int, list[str]]:
        """Apply one search's changes: entries added or changed (a changed one
        keeps its place, a new one goes last, as the server orders them),
        deleted, or (after a present phase) not named present.  Returns how
        many entries were removed, and the DNs of entries removed, added or
        renamed (old and new), which groups may name."""
        mine = self.entries.setdefault(name, {})
        gone = set(deleted)
        if present is not None:
            gone |= {i for i in mine if i not in present}
        stale = [mine[i].dn for i in gone if i in mine]
        for i, e in changed.items():
            if i not in mine:  # new here, or moved in from outside the search: groups may name it already
                stale.append(e.dn)
            elif mine[i].dn != e.dn:
                stale += [mine[i].dn, e.dn]  # groups may name either, before or after the server rewrites them
        before = len(mine)
        for i in gone:
            mine.pop(i, None)
        removed = before - len(mine)
        mine.update(changed)
        return removed, stale

    def freeze(self) -> None:
        """Encode the entries now and let go of them: a run hands them on to
        be resolved, which frees each group's member values once it is done
        with them, and saves the snapshot only at its end."""
        self.payload = _payload(self.entries)
        self.entries = {}


def _payload(entries: dict[str, dict[str, Entry]]) -> bytes:
    return marshal.dumps({name: [(i, e.dn, e.attrs) for i, e in by_id.items()] for name, by_id in entries.items()},
                         4)


def encode(snapshot: Snapshot) -> bytes:
    payload = snapshot.payload if snapshot.payload is not None else _payload(snapshot.entries)
    header = snapshot.header
    header.entries_sha256 = hashlib.sha256(payload).hexdigest()
    header.entries_length = len(payload)
    head = json.dumps(header.__dict__, sort_keys=True, separators=(",", ":")).encode()
    return b"".join((_MAGIC, head, b"\n", payload))


def save(path: Path, snapshot: Snapshot) -> None:
    """Replace the snapshot atomically, readable by its owner only; raises
    :class:`ldapsync.writer.WriteError` when it cannot be written."""
    write_if_changed(path, encode(snapshot), mode=0o600, kind="snapshot")


def discard(path: Path | None) -> None:
    """Remove a snapshot that no longer says where the directory stands."""
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove the snapshot %s: %s", path, exc.strerror or exc)


def _open(path: Path) -> int:
    try:
        fd = safeio.open_regular(path)
    except FileNotFoundError:
        raise Unusable("there is no snapshot yet") from None
    except (OSError, safeio.UnsafeFile) as exc:
        raise Unusable(f"the snapshot cannot be read ({exc.strerror if isinstance(exc, OSError) else exc})") from None
    problem = safeio.trust_problem(path, os.fstat(fd))
    if problem:
        os.close(fd)
        raise Unusable(f"the snapshot is not used: {problem}")
    return fd


def _header(blob: bytes, path: Path) -> tuple[Header, int]:
    """The header of a snapshot's first bytes, and where its entries start."""
    end = blob.find(b"\n", len(_MAGIC))
    if not blob.startswith(_MAGIC) or end < 0:
        raise Unusable(f"{path} is not a snapshot ldapsync wrote")
    try:
        fields = json.loads(blob[len(_MAGIC):end])
        header = Header(**fields)
    except (ValueError, TypeError) as exc:
        raise Unusable(f"the snapshot's header is damaged ({exc})") from None
    if header.format != FORMAT:
        raise Unusable(f"the snapshot was written by another version ({header.format}; this is {FORMAT})")
    return header, end + 1


def read_header(path: Path) -> Header:
    """Only the header: enough to tell that nothing changed."""
    fd = _open(path)
    try:
        blob = os.read(fd, _HEADER_LIMIT)
    finally:
        os.close(fd)
    return _header(blob, path)[0]


def load(path: Path) -> Snapshot:
    """The whole snapshot, its entries checked against the header's checksum."""
    fd = _open(path)
    try:
        blob = safeio.read_fd(fd, safeio.LIMITS["snapshot"], path)
    except OSError as exc:
        raise Unusable(f"the snapshot cannot be read ({exc.strerror or exc})") from None
    except safeio.UnsafeFile as exc:
        raise Unusable(str(exc)) from None
    finally:
        os.close(fd)
    header, start = _header(blob, path)
    payload = memoryview(blob)[start:]
    if len(payload) != header.entries_length or hashlib.sha256(payload).hexdigest() != header.entries_sha256:
        raise Unusable("the snapshot is damaged (its entries do not match their checksum)")
    try:
        raw = marshal.loads(payload)
        entries = {name: {i: Entry(dn, attrs) for i, dn, attrs in items} for name, items in raw.items()}
    except (EOFError, ValueError, TypeError, AttributeError) as exc:
        raise Unusable(f"the snapshot does not hold entries ({exc})") from None
    return Snapshot(header, entries)

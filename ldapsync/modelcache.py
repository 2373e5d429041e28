"""The groups ldapsync last wrote to each output, kept beside the state file.

Reading a large groups file back as Prosody does is a good part of a run,
and a run needs it twice: to see whether anything changed, and as the
old side of the diff.  When the state file is configured, each run that
writes an output also saves the verified groups it wrote there, with the
SHA-256 of the file's bytes.  The next run uses them only if the file on
disk still has exactly those bytes: a hand edit, a rollback or a copy from
elsewhere makes the run read the file as before.  A missing, stale or
damaged cache costs time, never correctness, and a cache that cannot be
written is a warning, not a failed run.

The cache decides whether a run writes and what its diff (and so its safety
limits) measures, so it is trusted only as ssh trusts its keys: the file and
every directory above it must belong to root or to the account running
ldapsync and be writable by nobody else; otherwise it is not used (a
warning says why).  Signing it instead would not help: the key would have to
live where the cache lives, within reach of whoever could write the cache.

The cache holds the groups' shape (names, public flags, sizes) apart from
their members, so that a run can tell most changes from the shape alone
and load the members only when it needs them.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from ldapsync import safeio
from ldapsync.config import path_tag
from ldapsync.groupsfile import GroupsFile
from ldapsync.model import GroupsModel
from ldapsync.writer import WriteError, write_if_changed

log = logging.getLogger(__name__)

_MAGIC = b"ldapsync groups model\n"
_FORMAT = f"2 py{sys.version_info[0]}.{sys.version_info[1]}"  # marshal's format may change with Python

Group = tuple[str, bool, Mapping[str, str]]  # name, public, members (JID -> name, "" for none)


def path_for(state_path: Path | None, output_path: Path) -> Path | None:
    """Where the cache of ``output_path`` lives: beside the state file, named
    after the output; None (no cache) when no state file is configured."""
    if state_path is None:
        return None
    return state_path.with_name(f"{state_path.name}.{output_path.name}.{path_tag(output_path)}.model")


def shape(groups: Iterable[tuple[str, bool, Mapping]]) -> list[tuple[str, bool, int]]:
    """Each group's name, public flag and size."""
    return [(name, public, len(members)) for name, public, members in groups]


def encode(reading: GroupsFile, data: bytes) -> bytes:
    """The cache of the file ``data``, from its ``reading`` (:func:`groupsfile.parse`):
    only for a file that was verified.  The reading holds each JID and name
    once however many groups have it, and so does the cache."""
    public = reading.public_names
    # marshal takes dicts only: a reading built from a model (GroupsFile.of_model) holds read-only views
    groups = [(name, name in public, members if type(members) is dict else dict(members))
              for name, members in reading.visible_groups().items()]
    outline = marshal.dumps(shape(groups), 4)
    members = marshal.dumps(groups, 4)
    digest = hashlib.sha256(outline)
    digest.update(members)  # no copy of the two joined: the worker's memory is the run's peak
    header = f"{_FORMAT} {_sha256(data)} {len(outline)} {digest.hexdigest()}\n".encode()
    return b"".join((_MAGIC, header, outline, members))


class Cached:
    """The groups a file holds, as a cache gave them."""

    def __init__(self, outline: list[tuple[str, bool, int]], members: bytes | memoryview) -> None:
        self.shape = outline
        self._members = members

    def groups(self) -> list[Group]:
        """Name, public flag and members of each group, in the file's order."""
        return marshal.loads(self._members)

    def means(self, model: GroupsModel) -> bool:
        """Whether the file holds exactly ``model``: most changes show in the
        shape, without loading the members."""
        groups = [(g.name, g.public, g.members) for g in model.groups]
        if shape(groups) != self.shape:
            return False
        # Prosody reads a nameless line as the name ""; the model says None
        return all(members == (old if "" not in old.values() else {j: n or None for j, n in old.items()})
                   for (_, _, members), (_, _, old) in zip(groups, self.groups(), strict=True))


def load(path: Path | None, data: bytes | None) -> Cached | None:
    """What the cache at ``path`` says of the file ``data``, if it was saved
    for exactly these bytes; otherwise None."""
    if path is None or data is None:
        return None
    try:
        blob = safeio.read_bytes(path, "cache", trusted=True)
    except FileNotFoundError:
        return None
    except safeio.UnsafeFile as exc:
        log.warning("not using the cache: %s; reading the groups file instead", exc)
        return None
    except OSError as exc:
        log.warning("cannot read the cache %s (%s); reading the groups file instead", path, exc.strerror or exc)
        return None
    header_end = blob.find(b"\n", len(_MAGIC))
    fields = blob[len(_MAGIC):header_end].decode("ascii", "replace").rsplit(" ", 3)
    payload = memoryview(blob)[header_end + 1:]
    if not blob.startswith(_MAGIC) or header_end < 0 or len(fields) != 4 or fields[0] != _FORMAT or (
            not fields[2].isdigit()):
        log.info("the cache %s is of another format; reading the groups file instead", path)
        return None
    if fields[1] != _sha256(data):
        log.info("the groups file is not what ldapsync wrote last (edited, rolled back or replaced); reading it")
        return None
    if fields[3] != _sha256(payload):
        log.warning("the cache %s is damaged; reading the groups file instead", path)
        return None
    split = int(fields[2])
    try:
        return Cached(marshal.loads(payload[:split]), payload[split:])  # the members stay as bytes till needed
    except (EOFError, ValueError, TypeError) as exc:  # saved by something else than ldapsync
        log.warning("the cache %s does not hold groups (%s); reading the groups file instead", path, exc)
        return None


def save(path: Path | None, blob: bytes | None) -> None:
    """Replace the cache at ``path`` with ``blob`` (atomically, readable by
    its owner only); a failure is logged and leaves at worst a stale cache,
    which no file matches."""
    if path is None or blob is None:
        return
    try:
        write_if_changed(path, blob, mode=0o600, kind="cache")
    except WriteError as exc:
        log.warning("cannot save the cache of the groups just written (the next run reads the file instead): %s",
                    exc)


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()

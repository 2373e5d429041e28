"""Reading only what changed: the snapshot, the tracker and the fallbacks.

``ldapsync run`` (and each run of ``serve``) reads the directory through
:class:`Reader`.  With a state file and a server that offers a change
marker, the first run reads everything and keeps a snapshot of it
(:mod:`ldapsync.snapshot`); each later run first asks the server whether
anything changed (one base read).  Nothing changed, the same config and
output files as the last run left them: the run ends there.  Otherwise
the tracker asks for the changed entries only (:mod:`ldapsync.directory.changes`),
applies them to the snapshot, and the run goes on exactly as after a full
read: membership, mapping, rendering, verification, limits, writing.

Anything doubtful reads everything instead and says why at info level: no
snapshot yet, one of another format, config or server, a damaged one, a
cookie the server refuses, a method that cannot tell which entries changed.
The snapshot on disk is replaced only after a run has written its files,
so a failed run leaves it as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ldapsync import dn as dnlib
from ldapsync import snapshot as snapshotlib
from ldapsync.config import Config
from ldapsync.directory import Directory, DirectoryError, Entry
from ldapsync.directory.base import SyncAnswer
from ldapsync.directory.changes import (
    BACKLINKS,
    ChangeNumber,
    ContentSync,
    ContentSync389,
    ContextCsn,
    NotIncremental,
    Query,
    Timestamps,
    Tracker,
    Usn,
    groups_naming,
    tracker_for,
)
from ldapsync.writer import WriteError

log = logging.getLogger(__name__)

FULL, INCREMENTAL, UNCHANGED = "full", "incremental", "unchanged"
# How long the groups naming a renamed or deleted DN are read again on each
# run: refint rewrites them a moment after the change, unmarked.
REFINT_GRACE = 30.0
MAX_WATCHED = 1000
# the trackers each ldap.change_tracking setting may use (auto never picks timestamp)
_METHODS = {"syncrepl": (ContentSync.method, ContentSync389.method, ContextCsn.method, ChangeNumber.method),
            "usn": (Usn.method,),
            "timestamp": (Timestamps.method,)}
_METHODS["auto"] = _METHODS["syncrepl"] + _METHODS["usn"]


@dataclass
class ReadInfo:
    """How a run read the directory (``run --json`` key ``read``, the state file)."""

    kind: str = FULL  # full, incremental, unchanged
    reason: str | None = None  # why a full read when one was not asked for
    method: str = "off"  # the change tracking used
    entries: int = 0  # entries the server sent (each UUID of a content-sync list of them counts as one)
    changed: int = 0  # entries added, changed or removed since the snapshot (incremental)
    warm: bool = False  # started from what the last run of this process left in memory (ldapsync.warm)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def config_hash(config: Config) -> str:
    """What the whole output depends on besides the directory and the files
    (not when or how often runs happen, nor where metrics go)."""
    data = config.model_dump(mode="json", exclude={"ldap": {"bind_password"}, "schedule": True, "metrics": True,
                                                   "state": {"lock_path", "lock_timeout"}})
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _fingerprint(queries: Sequence[Query], method: str) -> str:
    text = json.dumps([method, *[[q.name, q.base, q.filter, q.scope, sorted(q.attributes)] for q in queries]])
    return hashlib.sha256(text.encode()).hexdigest()


def _file_stat(path: os.PathLike[str] | str) -> list[int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


ReadAll = Callable[[Sequence[Query]], dict[str, list[Entry]]]


class Reader:
    """One run's reading of the directory, by snapshot and changes when it
    can; then, once the run has written its files, :meth:`keep` saves the
    new snapshot."""

    def __init__(self, config: Config, *, full: bool = False, reason: str | None = None,
                 kept: Kept | None = None, keep_entries: bool = False) -> None:
        self.config = config
        self.path = snapshotlib.path_for(config.state.path)
        self.full = full
        self.info = ReadInfo(reason=reason if full else None)
        self._pending: snapshotlib.Snapshot | None = None
        self.header: snapshotlib.Header | None = None  # of the snapshot the run used, if any
        # serve's poller (ldapsync.warm): the snapshot the last run saved, still in memory, and whether
        # this run's entries stay in memory for the next (else they are frozen: encoded and let go of)
        self.kept = kept
        self.keep_entries = keep_entries
        self.saved: Kept | None = None  # the snapshot this run saved (keep), with the file's identity

    def read(self, directory: Directory, queries_for: Callable[[str], list[Query]],
             read_all: ReadAll) -> dict[str, list[Entry]] | None:
        """Each query's entries, by a full read or from the snapshot and its
        changes; None when nothing changed since the last run and its
        output stands as it left it.  ``queries_for(id_attribute)`` gives
        the queries; ``read_all`` reads them in full."""
        started = directory.entries_sent
        try:
            if self.path is None:  # not configured: no reason to give on every run
                return read_all(queries_for(""))
            if self.full:
                raise NotIncremental(self.info.reason or "a full read was asked for")
            return self._changes(directory, queries_for)
        except (NotIncremental, snapshotlib.Unusable) as exc:
            if not self.full:
                self.info.reason = str(exc)
                log.info("reading the whole directory: %s", exc)
            return self._full(directory, queries_for, read_all)
        finally:
            self.info.entries = directory.entries_sent - started

    def _changes(self, directory: Directory,
                 queries_for: Callable[[str], list[Query]]) -> dict[str, list[Entry]] | None:
        assert self.path is not None
        setting = self.config.ldap.change_tracking
        if setting == "off":
            raise NotIncremental("ldap.change_tracking is off")
        header = snapshotlib.read_header(self.path)
        if header.method not in _METHODS[setting]:
            raise NotIncremental(f"ldap.change_tracking is {setting}; the snapshot was made with {header.method}")
        if header.server != directory.url:
            raise NotIncremental(f"the snapshot was read from {header.server}, this run reads {directory.url}")
        tracker = _tracker_named(directory, header)
        queries = queries_for(tracker.id_attribute)
        if header.fingerprint != _fingerprint(queries, tracker.method):
            raise NotIncremental("the config's searches (bases, filters, attributes) changed since the snapshot")
        self.info.method = tracker.method
        probe = tracker.probe()
        watch: dict[str, float] = dict(header.marker.get("watch") or {})
        unchanged = tracker.unchanged(probe, header.marker)
        self.header = header
        as_left = header.config_hash == config_hash(self.config) and all(
            _file_stat(o.path) == header.outputs.get(str(o.path)) for o in self.config.outputs)
        if unchanged and not watch and as_left:
            log.info("nothing changed in the directory, the config or the files since %s", _when(header.saved_at))
            self.info.kind = UNCHANGED
            return None
        if not tracker.incremental:
            raise NotIncremental(f"the directory changed, and the {tracker.method} method cannot tell which entries"
                                 if not unchanged else "the config or an output file changed since the last run")
        if not unchanged:
            self._incremental_settings(queries)
        snap = self._load(header)
        kept = _kept(queries_for(""), tracker.id_attribute)
        if not unchanged:
            answers, snap.header.marker = tracker.changes(queries, header.marker, probe)
            self._apply(snap, answers, queries, tracker.id_attribute, kept, watch)
        if watch:
            self._recheck_groups(directory, tracker, snap, queries, watch, kept["groups"])
        snap.header.marker["watch"] = watch
        self._pending = snap
        if not self.info.changed and not watch and as_left:
            # kept with the new marker, so the next run does not ask for these again
            log.info("the directory changed since %s, but nothing ldapsync reads", _when(header.saved_at))
            self.info.kind = UNCHANGED
            return None
        log.info("read %d changed entries since %s", self.info.changed, _when(header.saved_at))
        self.info.kind = INCREMENTAL
        entries = {q.name: list(snap.entries.get(q.name, {}).values()) for q in queries}
        self._freeze(snap)
        return entries

    def _load(self, header: snapshotlib.Header) -> snapshotlib.Snapshot:
        """The snapshot whose ``header`` is on disk: the one in memory when
        it is the very one the last run of this process saved there."""
        assert self.path is not None
        kept, self.kept = self.kept, None  # changed in place from here on
        if kept is not None and kept.is_on_disk(self.path, header):
            return kept.snapshot
        return snapshotlib.load(self.path)

    def _freeze(self, snap: snapshotlib.Snapshot) -> None:
        """Encode the entries and let go of them (see Snapshot.freeze), unless
        they are to stay in memory for the next run (serve's poller)."""
        if not self.keep_entries:
            snap.freeze()

    def _apply(self, snap: snapshotlib.Snapshot, answers: dict[str, SyncAnswer], queries: Sequence[Query],
               id_attribute: str, kept: dict[str, bool], watch: dict[str, float]) -> None:
        """Apply each query's answer to the snapshot, after checking it, and
        watch the DNs of the entries added, renamed or removed."""
        bases = {q.name: dnlib.normalize(q.base) for q in queries}
        for name, answer in answers.items():
            if answer.present is not None and not answer.present and snap.entries.get(name):
                raise NotIncremental(f"the server named none of the {name} present: not trusted")
            outside = next((e.dn for e in answer.changed.values()
                            if not dnlib.is_under(dnlib.normalize(e.dn), bases[name])), None)
            if outside is not None:
                raise NotIncremental(f"the server sent {outside} among the {name}, outside their base")
            mine = snap.entries.get(name, {})
            # an entry sent as it was (a password or a logon time changed) changes nothing ldapsync reads
            changed = {i: e for i, e in ((i, _without_id(e, id_attribute, kept[name]))
                                         for i, e in answer.changed.items()) if mine.get(i) != e}
            removed, stale = snap.apply(name, changed, answer.deleted, answer.present)
            self.info.changed += len(changed) + removed
            if name != "disabled":
                watch.update(dict.fromkeys(stale, time.time()))

    def _incremental_settings(self, queries: Sequence[Query]) -> None:
        """Refuse the settings where a change shows in entries the server
        does not mark changed."""
        if self.config.groups.nested == "in_chain":
            raise NotIncremental("groups.nested is in_chain: the server's answers change with entries that did "
                                 "not change themselves")
        for q in queries:
            if {a.lower().split(";", 1)[0] for a in q.attributes} & BACKLINKS:
                raise NotIncremental(f"the {q.name} are read with memberOf, which servers rewrite without marking "
                                     "the entries changed")

    def _recheck_groups(self, directory: Directory, tracker: Tracker, snap: snapshotlib.Snapshot,
                        queries: Sequence[Query], watch: dict[str, float], keep_id: bool) -> None:
        """Read again the groups that name a DN renamed or deleted lately,
        and those the snapshot has naming it: referential integrity
        (OpenLDAP's refint) rewrites their member values without marking
        them changed, a moment after the change.  While groups still name a
        DN that no entry has, it is watched, up to ``REFINT_GRACE`` seconds."""
        if len(watch) > MAX_WATCHED:
            raise NotIncremental(f"{len(watch)} entries were renamed or deleted lately: reading everything is "
                                 "cheaper than asking which groups name them")
        groups = next(q for q in queries if q.name == "groups")
        mine = snap.entries.setdefault("groups", {})
        keys = {dnlib.normalize(dn) for dn in watch}
        naming = [i for i, g in mine.items() if dnlib.named_keys(_member_dns(g), keys)]
        found = groups_naming(directory, tracker, groups, sorted(watch), naming)
        for gone in set(naming) - set(found):  # no longer a group of the query: as if deleted
            del mine[gone]
            self.info.changed += 1
        changed = {i: e for i, e in ((i, _without_id(e, tracker.id_attribute, keep_id)) for i, e in found.items())
                   if mine.get(i) != e}
        mine.update(changed)
        self.info.changed += len(changed)
        # Watched on: a DN that groups still name though no entry has it (a
        # rewrite may be pending), until the grace is over.
        named = dnlib.named_keys([v for g in found.values() for v in _member_dns(g)], keys)
        now = time.time()
        for dn, since in list(watch.items()):
            if dnlib.normalize(dn) not in named or now - since > REFINT_GRACE or _exists(directory, dn):
                del watch[dn]

    def _full(self, directory: Directory, queries_for: Callable[[str], list[Query]],
              read_all: ReadAll) -> dict[str, list[Entry]]:
        self.info.kind = FULL
        tracker = None
        if self.path is not None:
            try:
                tracker = tracker_for(directory, self.config.ldap.change_tracking, self.config.users.base)
            except NotIncremental as exc:
                log.info("no incremental runs: %s", exc)
                self.info.reason = str(exc)
                snapshotlib.discard(self.path)
        id_attribute = tracker.id_attribute if tracker is not None else ""
        queries = queries_for(id_attribute)
        marker = tracker.start(queries) if tracker is not None else None
        entries = read_all(queries)
        if tracker is None or marker is None:
            return entries
        self.info.method = tracker.method
        now = time.time()
        header = snapshotlib.Header(snapshotlib.FORMAT, _fingerprint(queries, tracker.method), "", tracker.method,
                                    directory.url, marker, now, now)
        if not tracker.incremental:  # a probe only: the snapshot keeps the marker, no entries
            self._pending = snapshotlib.Snapshot(header, {})
            return entries
        keep = _kept(queries_for(""), id_attribute)
        kept: dict[str, dict[str, Entry]] = {}
        for q in queries:
            by_id = kept[q.name] = {}
            for e in entries[q.name]:
                ids = e.attrs.get(id_attribute.lower())
                if not ids:
                    log.info("no incremental runs: %s has no %s", e.dn, id_attribute)
                    snapshotlib.discard(self.path)
                    return entries
                by_id[tracker.key(ids[0])] = _without_id(e, id_attribute, keep[q.name])
        self._pending = snapshotlib.Snapshot(header, kept)
        entries = {name: list(by_id.values()) for name, by_id in kept.items()}
        self._freeze(self._pending)
        return entries

    def keep(self, counts: dict[str, Any] | None = None, sizes: dict[str, tuple[int, int]] | None = None) -> None:
        """Save the snapshot the run used, now that its files are written (a
        warning when it cannot be: the next run then reads everything)."""
        snap = self._pending
        if snap is None or self.path is None:
            return
        h = snap.header
        h.config_hash = config_hash(self.config)
        h.saved_at = time.time()
        if self.info.kind == FULL:
            h.full_read_at = h.saved_at
        if counts is not None:  # else (nothing changed) the last run's stand
            h.counts = {"counts": counts, "sizes": sizes}  # what a run that finds nothing changed reports
        h.outputs = {str(o.path): stat for o in self.config.outputs if (stat := _file_stat(o.path)) is not None}
        try:
            snapshotlib.save(self.path, snap)
        except WriteError as exc:
            log.warning("cannot save the snapshot (the next run reads the whole directory): %s", exc)
            snapshotlib.discard(self.path)
            return
        if snap.payload is None:  # its entries are still here, to keep in memory
            self.saved = Kept(snap, _file_stat(self.path))


@dataclass
class Kept:
    """A snapshot a run saved, kept in memory with the identity of the file
    it went to: the next run uses it only while that file is still the
    same (another process's run, a restore or a removal replaces it)."""

    snapshot: snapshotlib.Snapshot
    stat: list[int] | None

    def is_on_disk(self, path: os.PathLike[str] | str, header: snapshotlib.Header) -> bool:
        mine = self.snapshot.header
        return (self.stat is not None and _file_stat(path) == self.stat and header.saved_at == mine.saved_at
                and header.entries_sha256 == mine.entries_sha256)


def _member_dns(group: Entry) -> list[str]:
    """The DNs a group's member values name (uniqueMember's #'...'B suffix dropped)."""
    return [dnlib.strip_uid_suffix(v) for attr in ("member", "uniquemember") for v in group.attrs.get(attr, ())]


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _exists(directory: Directory, dn: str) -> bool:
    try:
        directory.read_entry(dn, ["1.1"])
    except DirectoryError:  # gone, or unknown: watched on either way
        return False
    return True


def _tracker_named(directory: Directory, header: snapshotlib.Header) -> Tracker:
    context = header.marker.get("probe", {}).get("context", "")
    if header.method == ContentSync.method and directory.content_sync:
        return ContentSync(directory, context)
    if header.method == ContentSync389.method and directory.content_sync:
        return ContentSync389(directory, context)
    if header.method == ContextCsn.method:
        return ContextCsn(directory, context)
    if header.method == ChangeNumber.method:
        return ChangeNumber(directory, context)
    if header.method == Usn.method:
        return Usn(directory, context)
    if header.method == Timestamps.method:
        return Timestamps.from_marker(directory, header.marker.get("probe", {}))
    raise NotIncremental(f"the snapshot was made with the {header.method} method, which this backend lacks")


def _kept(plain: Sequence[Query], id_attribute: str) -> dict[str, bool]:
    """For each query, whether a run without change tracking reads the id
    attribute too (a template or the config names it): then entries keep it."""
    return {q.name: id_attribute.lower() in {a.lower() for a in q.attributes} for q in plain}


def _without_id(entry: Entry, id_attribute: str, keep: bool) -> Entry:
    """The entry as a run without change tracking reads it: the id attribute
    taken out (in place: the entries are the run's own, just read)."""
    if not keep and id_attribute:
        entry.attrs.pop(id_attribute.lower(), None)
    return entry

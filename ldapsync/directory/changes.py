"""Asking the directory what changed since the last run.

A run reads a few searches (users, groups, and the disabled users when
``users.disabled_filter`` is set).  A tracker says, cheaply, whether the
directory changed since a marker (:meth:`Tracker.probe`) and, when it can,
which entries of each search changed (:meth:`Tracker.changes`); the
pipeline (:mod:`ldapsync.incremental`) keeps the entries themselves.

- ``syncrepl`` (OpenLDAP with the syncprov overlay): the probe is the
  ``contextCSN`` of the database holding the users (one base read); the
  changes come from an RFC 4533 refreshOnly search per query with the
  cookie of the last run, which sends the entries added or changed and the
  entryUUIDs of those deleted or gone out of the search (from syncprov's
  session log; without one, a present phase names every entry still
  there).  python-ldap only: ldap3 has no content-sync consumer.
- ``contextcsn``: the same probe with ldap3, which then reads everything
  when anything changed.
- ``usn`` (Active Directory, Samba AD): the probe is the DC's
  ``highestCommittedUSN`` and ``invocationId``; the changes are each
  search's entries with a higher ``uSNChanged``, and a list of the
  objectGUIDs (and DNs) of all its entries for those deleted or gone out
  of it (see :class:`Usn`).  Both backends.

A server switch, an unknown or refused marker, anything doubtful: the
tracker raises :class:`NotIncremental`, and the run reads everything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ldapsync import dn as dnlib
from ldapsync.directory.base import Directory, DirectoryError, Entry, SyncAnswer

log = logging.getLogger(__name__)

SYNC_CONTROL = "1.3.6.1.4.1.4203.1.9.1.1"  # RFC 4533 content synchronization
# matches no entry: asked to learn the current cookie without any entries
_NO_ENTRY = "(entryUUID=00000000-0000-0000-0000-000000000000)"


class NotIncremental(Exception):
    """Why this run reads everything (said at info level)."""


@dataclass(frozen=True)
class Query:
    """One search a run makes: what the snapshot keeps the answer of."""

    name: str  # "users", "groups", "disabled"
    base: str
    filter: str
    scope: str
    attributes: tuple[str, ...]


class Tracker:
    """How changes are asked for on one kind of server."""

    method = "off"
    id_attribute = ""  # the attribute that names an entry for good (read with every entry)
    incremental = False  # False: the probe only; a change means a full read

    def __init__(self, directory: Directory, context: str) -> None:
        self.directory = directory
        self.context = context  # the naming context the users live in

    def probe(self) -> dict[str, Any]:
        """Where the directory stands now, cheaply: equal markers, nothing changed."""
        raise NotImplementedError

    def start(self, queries: Sequence[Query]) -> dict[str, Any]:
        """The marker to keep with a full read, taken before it: changes made
        while it runs are asked for again next time, never lost."""
        return {"probe": self.probe()}

    def key(self, value: str) -> str:
        """How an entry's ``id_attribute`` value names it in the snapshot."""
        return value

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                snapshot: Mapping[str, Mapping[str, Entry]] | None = None) -> tuple[dict[str, SyncAnswer],
                                                                                  dict[str, Any]]:
        """Each query's changes since ``marker``, and the marker after them;
        ``snapshot`` is what the last run kept of each query, by id."""
        raise NotIncremental(f"the {self.method} method cannot ask which entries changed")


class ContextCsn(Tracker):
    """OpenLDAP's syncprov: the database's contextCSN changes on every write."""

    method = "contextcsn"

    def probe(self) -> dict[str, Any]:
        values = self.directory.read_entry(self.context, ["contextCSN"]).get("contextcsn")
        if not values:
            raise NotIncremental(f"{self.context} has no contextCSN any more (is the syncprov overlay gone?)")
        return {"context": self.context, "csn": sorted(values)}


class ContentSync(ContextCsn):
    """RFC 4533 content sync (refreshOnly) over python-ldap."""

    method = "syncrepl"
    id_attribute = "entryUUID"
    incremental = True

    def start(self, queries: Sequence[Query]) -> dict[str, Any]:
        probe = self.probe()
        cookies = {}
        for q in queries:
            # a cookie now, without entries: the full read that follows starts no earlier
            answer = self.directory.sync_refresh(q.base, _NO_ENTRY, [], "base", None, f"the {q.name} cookie")
            if not answer.cookie:
                raise NotIncremental("the server gave no content-sync cookie")
            cookies[q.name] = answer.cookie
        return {"probe": probe, "cookies": cookies}

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                snapshot: Mapping[str, Mapping[str, Entry]] | None = None) -> tuple[dict[str, SyncAnswer],
                                                                                  dict[str, Any]]:
        from ldapsync.directory.pyldap_backend import ContentSyncRefused

        cookies = marker.get("cookies") or {}
        probe = self.probe()
        answers, new = {}, {}
        for q in queries:
            if not cookies.get(q.name):
                raise NotIncremental(f"the snapshot has no cookie for the {q.name}")
            try:
                answer = self.directory.sync_refresh(q.base, q.filter, q.attributes, q.scope, cookies[q.name],
                                                     q.name)
            except ContentSyncRefused as exc:
                raise NotIncremental(str(exc)) from None
            if answer.present is not None:
                log.info("the server named every %s still there (a present phase): configure "
                         "syncprov-sessionlog for smaller answers", q.name)
            if not answer.cookie:
                raise NotIncremental(f"the server's answer for the {q.name} has no cookie")
            answers[q.name], new[q.name] = answer, answer.cookie
        return answers, {"probe": probe, "cookies": new}


# attributes whose values change without a change to the entry's uSNChanged
# (backlinks the server keeps): a search naming one cannot be patched
_BACKLINKS = ("memberof",)
_TERMS = 50  # values per OR filter when groups are read again


class Usn(Tracker):
    """Active Directory (Windows, Samba): every write takes the next USN of
    the DC, ``uSNChanged`` of the entry written.

    A query's changes since USN *N* are its entries with
    ``uSNChanged>=N+1``, plus the objectGUID and DN of every entry it
    holds now (one light search, the same filter asking for nothing but
    objectGUID): the entries of the snapshot missing there are gone
    (deleted, moved out of the base, no longer matched).  Tombstones would
    tell deletions in fewer entries, but an account that is not a domain
    admin does not see them (Windows and Samba alike), and a deletion
    missed would keep a user for good.

    Groups name their members by DN, and the DC rewrites those values when
    a member is renamed, moved or deleted without a new uSNChanged for the
    group: so every group of the snapshot holding a DN that an entry of a
    search left or took since (renamed, moved, added, removed), and every
    group linking one of the entries that took a new DN, is read again.

    USNs are the DC's own: another DC (``dsServiceName``) or the same one
    restored from a backup (a new ``invocationId``) means a full read."""

    method = "usn"
    id_attribute = "objectGUID"
    incremental = True

    def probe(self) -> dict[str, Any]:
        root = self.directory.read_entry("", ["highestCommittedUSN", "dsServiceName"])
        usn, service = root.get("highestcommittedusn"), root.get("dsservicename")
        if not usn or not service:
            raise NotIncremental("the server's root DSE has no highestCommittedUSN or dsServiceName any more")
        invocation = self.directory.read_entry(service[0], ["invocationId"]).get("invocationid")
        if not invocation:
            raise NotIncremental(f"cannot read the invocationId of {service[0]}")
        return {"context": self.context, "usn": int(usn[0]), "service": service[0],
                "invocation": self.key(invocation[0])}

    def key(self, value: str) -> str:
        """objectGUID's 16 bytes as AD writes a GUID."""
        return str(uuid.UUID(bytes_le=value.encode("utf-8", "surrogateescape")))

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                snapshot: Mapping[str, Mapping[str, Entry]] | None = None) -> tuple[dict[str, SyncAnswer],
                                                                                  dict[str, Any]]:
        if snapshot is None:
            raise NotIncremental("the usn method needs the snapshot's entries")
        for q in queries:
            named = {a.lower().split(";", 1)[0] for a in q.attributes}
            if named & set(_BACKLINKS):
                raise NotIncremental(f"the {q.name} search reads memberOf, which the DC changes without a new "
                                     "uSNChanged")
        last = marker.get("probe") or {}
        probe = self.probe()
        if (last.get("service"), last.get("invocation")) != (probe["service"], probe["invocation"]):
            raise NotIncremental(f"the snapshot was read from {last.get('service')} (invocationId "
                                 f"{last.get('invocation')}), this server is {probe['service']} (invocationId "
                                 f"{probe['invocation']}): USNs of another DC or of a restored one")
        since = last.get("usn")
        if not isinstance(since, int) or since > probe["usn"]:
            raise NotIncremental(f"the snapshot's USN {since!r} is not one this DC has passed")
        answers: dict[str, SyncAnswer] = {}
        moved: set[str] = set()  # DNs (normalized) an entry left or took since the snapshot
        taken: dict[str, str] = {}  # the new DNs, as the server spells them
        for q in queries:
            changed = self._by_id(self.directory.search(
                q.base, f"(&{q.filter}(uSNChanged>={since + 1}))", q.attributes, q.scope, f"changed {q.name}"))
            now = {i: e.dn for i, e in self._by_id(self.directory.search(
                q.base, q.filter, [self.id_attribute], q.scope, f"all {q.name} (objectGUID)")).items()}
            before = snapshot.get(q.name, {})
            for i, old in before.items():
                new = now.get(i)
                if new is None or dnlib.normalize(new) != dnlib.normalize(old.dn):
                    moved.add(dnlib.normalize(old.dn))
            for i, new in now.items():
                if i not in before or dnlib.normalize(before[i].dn) != dnlib.normalize(new):
                    moved.add(dnlib.normalize(new))
                    taken[dnlib.normalize(new)] = new
            answers[q.name] = SyncAnswer(changed, set(), set(now), None)
        groups = next((q for q in queries if q.name == "groups"), None)
        if groups is not None and moved:
            answer, present = answers["groups"], answers["groups"].present or set()
            stale = [i for i, e in snapshot.get("groups", {}).items()
                     if i in present and i not in answer.changed and _holds_any(e, moved)]
            answer.changed.update(self._read_again(groups, [f"(objectGUID={_guid_filter(i)})" for i in stale]))
            answer.changed.update(self._read_again(groups, [f"(member={_escape(dn)})" for dn in taken.values()]))
        return answers, {"probe": probe}

    def _by_id(self, entries: Iterable[Entry]) -> dict[str, Entry]:
        found = {}
        for e in entries:
            ids = e.attrs.get(self.id_attribute.lower())
            if not ids:
                raise NotIncremental(f"{e.dn} has no {self.id_attribute}")
            found[self.key(ids[0])] = e
        return found

    def _read_again(self, q: Query, terms: list[str]) -> dict[str, Entry]:
        """The groups matching any of ``terms`` (and the query), read in full."""
        found: dict[str, Entry] = {}
        for start in range(0, len(terms), _TERMS):
            either = "".join(terms[start:start + _TERMS])
            found.update(self._by_id(self.directory.search(q.base, f"(&{q.filter}(|{either}))", q.attributes,
                                                           q.scope, "groups holding a moved entry")))
        return found


def _holds_any(group: Entry, dns: set[str]) -> bool:
    """Whether a group's member values name one of ``dns`` (normalized)."""
    return any(dnlib.normalize(v) in dns for a in ("member", "uniquemember") for v in group.attrs.get(a, ()))


def _guid_filter(guid: str) -> str:
    """A GUID as the escaped bytes a filter on objectGUID compares."""
    return "".join(f"\\{b:02x}" for b in uuid.UUID(guid).bytes_le)


def _escape(value: str) -> str:
    """An assertion value for a search filter (RFC 4515)."""
    return "".join(f"\\{ord(c):02x}" if c in "\\*()\0" else c for c in value)


def tracker_for(directory: Directory, setting: str, users_base: str) -> Tracker:
    """The tracker ``ldap.change_tracking`` asks for (``auto``: what the
    server offers), for a connected directory; raises :class:`NotIncremental`
    when there is none."""
    if setting == "off":
        raise NotIncremental("ldap.change_tracking is off")
    root = directory.read_entry("", ["namingContexts", "supportedControl", "highestCommittedUSN", "dsServiceName"])
    if setting in ("auto", "syncrepl") and SYNC_CONTROL in root.get("supportedcontrol", ()):
        context = _context_of(root.get("namingcontexts", []), users_base)
        if context is None:
            raise NotIncremental(f"no naming context of the server holds {users_base!r}")
        tracker: Tracker = ContentSync(directory, context) if directory.content_sync else ContextCsn(directory,
                                                                                                     context)
        try:
            tracker.probe()
        except DirectoryError as exc:
            raise NotIncremental(f"cannot read the contextCSN of {context}: {exc}") from None
        if not directory.content_sync:
            log.info("ldap3 has no content-sync consumer: a change means a full read (ldap.backend: python-ldap "
                     "reads only the changes)")
        return tracker
    if setting == "syncrepl":
        raise NotIncremental("ldap.change_tracking is syncrepl, but the server does not offer content sync "
                             "(OpenLDAP: load the syncprov overlay)")
    if setting in ("auto", "usn") and root.get("highestcommittedusn") and root.get("dsservicename"):
        context = _context_of(root.get("namingcontexts", []), users_base)
        if context is None:
            raise NotIncremental(f"no naming context of the server holds {users_base!r}")
        tracker = Usn(directory, context)
        try:
            tracker.probe()
        except DirectoryError as exc:
            raise NotIncremental(f"cannot read the DC's highestCommittedUSN and invocationId: {exc}") from None
        return tracker
    if setting == "usn":
        raise NotIncremental("ldap.change_tracking is usn, but the server has no highestCommittedUSN (it is no "
                             "Active Directory domain controller)")
    raise NotIncremental("the server offers no change marker ldapsync knows (OpenLDAP: load the syncprov "
                         "overlay; Active Directory: a domain controller's highestCommittedUSN)")


def _context_of(contexts: list[str], base: str) -> str | None:
    """The naming context holding ``base`` (the longest that does)."""
    key = dnlib.normalize(base)
    holding = [c for c in contexts if dnlib.is_under(key, dnlib.normalize(c))]
    return max(holding, key=len, default=None)

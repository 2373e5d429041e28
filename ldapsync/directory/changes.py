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
- ``syncrepl-389ds`` (389-ds, FreeIPA with the Content Synchronization
  plugin): the probe is the retro changelog's ``lastchangenumber``; content
  sync as above, with the differences :class:`ContentSync389` works around.
  ``changenumber``: the same probe with ldap3.
- ``usn`` (Active Directory, Samba AD): the probe is the DC's
  ``highestCommittedUSN`` and ``invocationId``; the changes are each
  search's entries with a higher ``uSNChanged``, and a list of the
  objectGUIDs (and DNs) of all its entries for those deleted or gone out
  of it (see :class:`Usn`).  Both backends.
- ``timestamp`` (389-ds, FreeIPA, any server with a clock ldapsync can
  read): the same with ``modifyTimestamp`` since the server's time at the
  last run, less a margin, and entries kept by entryUUID or nsUniqueId
  (see :class:`Timestamps`).  Both backends; only when asked for.

A server switch, an unknown or refused marker, anything doubtful: the
tracker raises :class:`NotIncremental`, and the run reads everything.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

    def unchanged(self, probe: dict[str, Any], marker: dict[str, Any]) -> bool:
        """Whether ``probe`` says nothing changed since ``marker`` was kept."""
        return probe == marker.get("probe")

    def describe(self) -> str:
        """The method and what it watches, for ``check --connect``."""
        return self.method

    def entry_id(self, entry: Entry) -> str:
        """The id of an entry read with ``id_attribute``."""
        ids = entry.attrs.get(self.id_attribute.lower())
        if not ids:
            raise NotIncremental(f"{entry.dn} has no {self.id_attribute}")
        return self.key(ids[0])

    def id_filter(self, entry_id: str) -> str:
        """A filter matching the entry with this id."""
        from ldap3.utils.conv import escape_filter_chars

        return f"({self.id_attribute}={escape_filter_chars(entry_id)})"

    def listing(self, q: Query) -> dict[str, str]:
        """Every entry ``q`` holds now, id -> DN: one light search asking for
        the id attribute alone, whose missing ids are the entries gone
        (deleted, moved out of the base, no longer matched)."""
        return {self.entry_id(e): e.dn for e in self.directory.search(
            q.base, q.filter, [self.id_attribute], q.scope, f"all {q.name} ({self.id_attribute})")}

    def start(self, queries: Sequence[Query]) -> dict[str, Any]:
        """The marker to keep with a full read, taken before it: changes made
        while it runs are asked for again next time, never lost."""
        return {"probe": self.probe()}

    def key(self, value: str) -> str:
        """How an entry's ``id_attribute`` value names it in the snapshot."""
        return value

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                probe: dict[str, Any]) -> tuple[dict[str, SyncAnswer], dict[str, Any]]:
        """Each query's changes since ``marker``, and the marker after them;
        ``probe`` is the probe taken before (changes made since are asked
        for again next time).  Groups whose member values the server
        rewrote without marking them changed are the reader's to find
        (:func:`groups_naming`)."""
        raise NotIncremental(f"the {self.method} method cannot ask which entries changed")


class ContextCsn(Tracker):
    """OpenLDAP's syncprov: the database's contextCSN changes on every write."""

    method = "contextcsn"

    def describe(self) -> str:
        return f"{self.method} (the contextCSN of {self.context})"

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
            answer = self.directory.sync_refresh(q.base, self._cookie_filter(q), [], "base", None,
                                                 f"the {q.name} cookie")
            if not answer.cookie:
                raise NotIncremental("the server gave no content-sync cookie")
            cookies[q.name] = answer.cookie
        return {"probe": probe, "cookies": cookies}

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                probe: dict[str, Any]) -> tuple[dict[str, SyncAnswer], dict[str, Any]]:
        from ldapsync.directory.pyldap_backend import ContentSyncRefused

        cookies = marker.get("cookies") or {}
        answers, new = {}, {}
        for q in queries:
            if not cookies.get(q.name):
                raise NotIncremental(f"the snapshot has no cookie for the {q.name}")
            try:
                answer = self.directory.sync_refresh(q.base, q.filter, q.attributes, q.scope, cookies[q.name],
                                                     q.name)
            except ContentSyncRefused as exc:
                raise NotIncremental(str(exc)) from None
            if not answer.cookie:
                raise NotIncremental(f"the server's answer for the {q.name} has no cookie")
            answers[q.name], new[q.name] = self._complete(q, answer), answer.cookie
        return answers, {"probe": probe, "cookies": new}

    def _cookie_filter(self, q: Query) -> str:
        """The filter of the base-scope search that asks for the cookie ``q`` starts from."""
        return _NO_ENTRY

    def _complete(self, q: Query, answer: SyncAnswer) -> SyncAnswer:
        """The answer as the snapshot takes it, checked."""
        for sync_id, entry in answer.changed.items():
            _check_named(entry.dn, sync_id, self.entry_id(entry), self.id_attribute)
        if answer.present is not None:
            log.info("the server named every %s still there (a present phase): configure "
                     "syncprov-sessionlog for smaller answers", q.name)
        return answer


class ContentSync389(ContentSync):
    """RFC 4533 content sync from 389-ds (FreeIPA, Red Hat Directory Server)
    with the Content Synchronization plugin, over python-ldap.  It differs
    from OpenLDAP's syncprov, as seen on 389-ds 2.3:

    - it names entries by their nsUniqueId written as a UUID, not by their
      entryUUID (:meth:`key`);
    - there is no contextCSN: the probe is the root DSE's
      ``lastchangenumber``, the last change in the retro changelog the
      plugin reads, which moves on every write;
    - a cookie holds the bind DN, base and filter of the search that got it
      and is refused for any other: the cookie kept before a full read comes
      from the query itself, in base scope (the scope is not part of it);
    - a refresh with a cookie sends each changed entry with all its user
      attributes and none of its operational ones (no nsUniqueId, no
      nsAccountLock), whatever was asked for: the entries it names are read
      again by a plain search of the query;
    - it sends the entries deleted or moved out of the base, but nothing for
      an entry changed so that the filter no longer matches it (a disabled
      account), and it ends as after a present phase that named only the
      entries sent.  The entries present are therefore listed by one light
      search of the query asking for nsUniqueId, as the ``usn`` method
      does: those of the snapshot missing from it are gone."""

    method = "syncrepl-389ds"
    id_attribute = "nsUniqueId"

    def describe(self) -> str:
        return f"{self.method} (the retro changelog's lastchangenumber; content sync under {self.context})"

    def probe(self) -> dict[str, Any]:
        return _last_change(self.directory, self.context)

    def key(self, value: str) -> str:
        """nsUniqueId ``789dbc99-ee2511f1-bb769795-aad1892d`` is the UUID
        ``789dbc99-ee25-11f1-bb76-9795aad1892d`` in content sync."""
        try:
            return str(uuid.UUID(hex=value.replace("-", "")))
        except ValueError:
            return value  # no UUID the server sends: _complete then reads everything

    def id_filter(self, entry_id: str) -> str:
        try:
            h = uuid.UUID(entry_id).hex
        except ValueError:
            return super().id_filter(entry_id)
        return f"(nsUniqueId={h[:8]}-{h[8:16]}-{h[16:24]}-{h[24:]})"

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                probe: dict[str, Any]) -> tuple[dict[str, SyncAnswer], dict[str, Any]]:
        # 389-ds accepts a cookie older than the retro changelog's first change
        # (trimmed by its maximum age) and sends what is left: deletions lost
        first = (self.directory.read_entry("", ["firstchangenumber"]).get("firstchangenumber") or ["none"])[0]
        since = str((marker.get("probe") or {}).get("changenumber"))
        if not (first.isdigit() and since.isdigit()):
            raise NotIncremental(f"cannot tell whether the retro changelog (first change {first}) still holds the "
                                 f"changes since {since}")
        if int(first) > int(since) + 1:
            raise NotIncremental(f"the retro changelog starts at change {first}, after the snapshot's {since}: the "
                                 "changes in between were trimmed")
        return super().changes(queries, marker, probe)

    def _cookie_filter(self, q: Query) -> str:
        return q.filter

    def _complete(self, q: Query, answer: SyncAnswer) -> SyncAnswer:
        changed: dict[str, Entry] = {}
        ids = sorted(answer.changed)
        for start in range(0, len(ids), 100):  # filters of a sane length
            either = "".join(self.id_filter(i) for i in ids[start:start + 100])
            for entry in self.directory.search(q.base, f"(&{q.filter}(|{either}))", q.attributes, q.scope,
                                               f"changed {q.name}"):
                changed[self.entry_id(entry)] = entry
        listed = self.listing(q)
        by_dn = {dnlib.normalize(dn): i for i, dn in listed.items()}
        for sync_id, sent in answer.changed.items():
            listed_id = by_dn.get(dnlib.normalize(sent.dn))
            if listed_id is not None:
                _check_named(sent.dn, sync_id, listed_id, self.id_attribute)
        # in the server's order; an entry read again but no longer listed went in between
        changed = {i: changed[i] for i in answer.changed if i in changed and i in listed}
        return SyncAnswer(changed, answer.deleted, set(listed), answer.cookie)


class ChangeNumber(Tracker):
    """389-ds's retro changelog with ldap3, which has no content-sync
    consumer: the probe of :class:`ContentSync389` only, so that a run
    stops when nothing changed and reads everything when something did."""

    method = "changenumber"

    def describe(self) -> str:
        return f"{self.method} (the retro changelog's lastchangenumber, for {self.context})"

    def probe(self) -> dict[str, Any]:
        return _last_change(self.directory, self.context)


def _last_change(directory: Directory, context: str) -> dict[str, Any]:
    """389-ds's marker: the root DSE's ``lastchangenumber``, the last change
    the retro changelog recorded, which moves on every write."""
    values = directory.read_entry("", ["lastchangenumber"]).get("lastchangenumber")
    if not values:
        raise NotIncremental("the server's root DSE has no lastchangenumber any more (is the retro changelog "
                             "plugin off?)")
    return {"context": context, "changenumber": values[0]}


def _check_named(dn: str, sync_id: str, entry_id: str, id_attribute: str) -> None:
    """The snapshot keeps entries by their id attribute: a server naming
    them otherwise in content sync would leave every entry it deletes there."""
    if entry_id != sync_id:
        raise NotIncremental(f"the server names {dn} {sync_id} in content sync, not by its {id_attribute} "
                             f"({entry_id})")


def groups_naming(directory: Directory, tracker: Tracker, groups: Query, dns: Sequence[str],
                  ids: Sequence[str]) -> dict[str, Entry]:
    """The groups (of the ``groups`` query, by id) whose member or
    uniqueMember values name one of ``dns``, and the groups ``ids``: those
    a server rewrites when an entry they name is renamed or deleted
    (OpenLDAP's refint; Active Directory's links) without marking them
    changed."""
    from ldap3.utils.conv import escape_filter_chars  # ldap3 loads only where it is used

    terms = [f"(member={v})(uniqueMember={v})" for v in map(escape_filter_chars, dns)]
    terms += [tracker.id_filter(i) for i in ids]
    found: dict[str, Entry] = {}
    for start in range(0, len(terms), 100):  # filters of a sane length
        either = "".join(terms[start:start + 100])
        for entry in directory.search(groups.base, f"(&{groups.filter}(|{either}))", groups.attributes,
                                      groups.scope, "groups naming renamed or deleted entries"):
            found[tracker.entry_id(entry)] = entry
    return found


# attributes the server keeps from other entries' values (backlinks): they
# change without the entry being marked changed, on OpenLDAP (memberof) and AD
BACKLINKS = frozenset({"memberof"})


class ChangedSince(Tracker):
    """A server that marks every entry written with a value a filter can
    ask for (``uSNChanged``, ``modifyTimestamp``) but keeps no record of
    the entries deleted.

    A query's changes are its entries written since the marker
    (:meth:`written_since`), and the id of every entry it holds now (one
    light search, the same filter asking for the id attribute alone): the
    entries of the snapshot missing there are gone (deleted, moved out of
    the base, no longer matched).  A renamed or moved entry is written
    too, so it comes again with its new DN under the same id.

    Groups name their members by DN, and servers rewrite those values when
    a member is renamed, moved or deleted without marking the group
    written (AD's links, OpenLDAP's refint): the reader reads those groups
    again (:func:`groups_naming`)."""

    incremental = True

    def written_since(self, last: dict[str, Any], probe: dict[str, Any]) -> str:
        """The filter term matching the entries written since the probe
        ``last`` (raises :class:`NotIncremental` when ``probe`` cannot
        follow it)."""
        raise NotImplementedError

    def changes(self, queries: Sequence[Query], marker: dict[str, Any],
                probe: dict[str, Any]) -> tuple[dict[str, SyncAnswer], dict[str, Any]]:
        written = self.written_since(marker.get("probe") or {}, probe)
        answers: dict[str, SyncAnswer] = {}
        for q in queries:
            changed = self._by_id(self.directory.search(
                q.base, f"(&{q.filter}{written})", q.attributes, q.scope, f"changed {q.name}"))
            present = set(self.listing(q))
            # one deleted between the two searches is gone, not changed; one
            # written between them is asked for again next time (the marker is older)
            changed = {i: e for i, e in changed.items() if i in present}
            answers[q.name] = SyncAnswer(changed, set(), present, None)
        return answers, {"probe": probe}

    def _by_id(self, entries: Iterable[Entry]) -> dict[str, Entry]:
        return {self.entry_id(e): e for e in entries}


class Usn(ChangedSince):
    """Active Directory (Windows, Samba): every write takes the next USN of
    the DC, ``uSNChanged`` of the entry written.

    A query's changes since USN *N* are its entries with
    ``uSNChanged>=N+1``, and the objectGUID of every entry it holds now
    (:class:`ChangedSince`).  Tombstones would tell deletions in fewer
    entries, but an account that is not a domain admin does not see them
    (Windows and Samba alike), and a deletion missed would keep a user for
    good.  The DC rewrites the member values of groups naming a renamed,
    moved or deleted entry without a new uSNChanged for the group.

    USNs are the DC's own: another DC (``dsServiceName``) or the same one
    restored from a backup (a new ``invocationId``) means a full read."""

    method = "usn"
    id_attribute = "objectGUID"

    def describe(self) -> str:
        return f"{self.method} (uSNChanged on the domain controller, for {self.context})"

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

    def id_filter(self, entry_id: str) -> str:
        """objectGUID compares its 16 bytes, escaped one by one."""
        return "(objectGUID=" + "".join(f"\\{b:02x}" for b in uuid.UUID(entry_id).bytes_le) + ")"

    def written_since(self, last: dict[str, Any], probe: dict[str, Any]) -> str:
        if (last.get("service"), last.get("invocation")) != (probe["service"], probe["invocation"]):
            raise NotIncremental(f"the snapshot was read from {last.get('service')} (invocationId "
                                 f"{last.get('invocation')}), this server is {probe['service']} (invocationId "
                                 f"{probe['invocation']}): USNs of another DC or of a restored one")
        since = last.get("usn")
        if not isinstance(since, int) or since > probe["usn"]:
            raise NotIncremental(f"the snapshot's USN {since!r} is not one this DC has passed")
        return f"(uSNChanged>={since + 1})"


# How far before the server's time at the last run a run asks for changes:
# modifyTimestamp has one-second steps; a write takes its time when it
# starts and may be seen only once it ends (a large group, a slow disk);
# suppliers of a multi-master directory send their writes with the time
# they were made, usually seconds late.  Entries written within the margin
# are sent again on each run, and compared: they cost, they never harm.
MARGIN = timedelta(seconds=300)
# Where servers tell their time: (entry, attribute), tried in this order.
CLOCKS = (
    ("", "currentTime"),  # the root DSE: Active Directory, some others
    ("cn=monitor", "currentTime"),  # 389-ds, FreeIPA
    ("cn=Current,cn=Time,cn=Monitor", "monitorTimestamp"),  # OpenLDAP's back-monitor database
)
# Attributes naming an entry for good, preferred first: OpenLDAP and 389-ds
# 2.x with its entryUUID plugin; 389-ds always.
ID_ATTRIBUTES = ("entryUUID", "nsUniqueId")
_GENERALIZED_TIME = re.compile(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)?(\d\d)?(?:[.,](\d+))?(Z|[+-]\d\d(?:\d\d)?)")


def parse_generalized_time(value: str) -> datetime:
    """A GeneralizedTime (RFC 4517: ``20261202074600Z``,
    ``20261202074600.123Z``, ``2026120207+0100``) as an aware datetime;
    raises ValueError for anything else."""
    m = _GENERALIZED_TIME.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not a GeneralizedTime")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0),
                      tzinfo=UTC)
    if fraction:  # of the last unit given
        unit = timedelta(seconds=1 if second else 60 if minute else 3600)
        moment += unit * float("0." + fraction)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0))
    return moment


def generalized_time(moment: datetime) -> str:
    """``moment`` as a GeneralizedTime in UTC, in whole seconds (rounded
    down): what filters on modifyTimestamp compare with."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def written_after(server_time: str) -> str:
    """The filter term for the entries written since ``server_time`` (the
    server's time at the last run's probe), less :data:`MARGIN`."""
    return f"(modifyTimestamp>={generalized_time(parse_generalized_time(server_time) - MARGIN)})"


class Timestamps(ChangedSince):
    """Any server that sets ``modifyTimestamp`` on every write and names
    entries for good (entryUUID, nsUniqueId): 389-ds, FreeIPA, OpenLDAP
    without syncprov.

    A query's changes are its entries with ``modifyTimestamp`` at or after
    the server's time at the last run's probe less :data:`MARGIN`, and the
    id of every entry it holds now (:class:`ChangedSince`).  Servers set
    modifyTimestamp on an add and a rename too.  The probe reads the
    server's own clock (:data:`CLOCKS`), never this machine's: a clock
    behind the server's would ask for too little, unseen.  The probe
    cannot tell that nothing changed (a deletion leaves no time behind),
    so every run lists the ids.

    What it cannot see: a write that reaches the server with a time older
    than the margin (a supplier of a multi-master directory that was cut
    off for longer), and entries put back to an older version (a restore
    from a backup).  Neither leaves a sign, so the method is used only
    when asked for, and the full reads of ``schedule.cron`` catch them."""

    method = "timestamp"

    def __init__(self, directory: Directory, context: str, id_attribute: str, clock: Sequence[str]) -> None:
        super().__init__(directory, context)
        self.id_attribute = id_attribute
        self.clock = (clock[0], clock[1])

    @classmethod
    def from_marker(cls, directory: Directory, probe: dict[str, Any]) -> Timestamps:
        """The tracker a snapshot's marker was taken with."""
        clock = probe.get("clock")
        if not probe.get("id_attribute") or not isinstance(clock, list) or len(clock) != 2:
            raise NotIncremental("the snapshot's marker names no id attribute or clock")
        return cls(directory, probe.get("context", ""), probe["id_attribute"], clock)

    def describe(self) -> str:
        where = f"{self.clock[1]} of {self.clock[0] or 'the root DSE'}"
        return f"{self.method} (modifyTimestamp by the server's clock, {where}; entries by {self.id_attribute})"

    def probe(self) -> dict[str, Any]:
        now = server_time(self.directory, self.clock)
        if now is None:
            raise NotIncremental(f"cannot read the server's time ({self.clock[1]} of "
                                 f"{self.clock[0] or 'the root DSE'}) any more")
        named_by = id_attribute_of(self.directory, self.context)
        if named_by != self.id_attribute:
            raise NotIncremental(f"the entries were kept by {self.id_attribute}; {self.context} now has "
                                 f"{named_by or 'neither entryUUID nor nsUniqueId'}")
        return {"context": self.context, "time": now, "clock": list(self.clock), "id_attribute": self.id_attribute}

    def unchanged(self, probe: dict[str, Any], marker: dict[str, Any]) -> bool:
        """Never: a deletion leaves no time behind."""
        return False

    def key(self, value: str) -> str:
        """Ids as the server spells them, in one case (nsUniqueId is hex)."""
        return value.lower()

    def written_since(self, last: dict[str, Any], probe: dict[str, Any]) -> str:
        try:
            since, now = parse_generalized_time(last.get("time", "")), parse_generalized_time(probe["time"])
        except ValueError as exc:
            raise NotIncremental(f"the snapshot's marker: {exc}") from None
        if now < since:
            raise NotIncremental(f"the server's clock reads {probe['time']}, before the snapshot's marker "
                                 f"{last['time']}: it went back, and writes made since may carry older times")
        return written_after(last["time"])


def server_time(directory: Directory, clock: Sequence[str]) -> str | None:
    """The server's time as its ``clock`` (entry, attribute) tells it, or
    None when it cannot be read or is no GeneralizedTime."""
    try:
        values = directory.read_entry(clock[0], [clock[1]]).get(clock[1].lower())
    except DirectoryError:
        return None
    if not values:
        return None
    try:
        parse_generalized_time(values[0])
    except ValueError:
        return None
    return values[0]


def clock_of(directory: Directory) -> tuple[str, str] | None:
    """The first of :data:`CLOCKS` the server answers."""
    return next((c for c in CLOCKS if server_time(directory, c) is not None), None)


def id_attribute_of(directory: Directory, context: str) -> str | None:
    """The first of :data:`ID_ATTRIBUTES` the naming context's entry has."""
    entry = directory.read_entry(context, list(ID_ATTRIBUTES))
    return next((a for a in ID_ATTRIBUTES if entry.get(a.lower())), None)


def tracker_for(directory: Directory, setting: str, users_base: str) -> Tracker:
    """The tracker ``ldap.change_tracking`` asks for (``auto``: what the
    server offers), for a connected directory; raises :class:`NotIncremental`
    when there is none."""
    if setting == "off":
        raise NotIncremental("ldap.change_tracking is off")
    try:
        root = directory.read_entry("", ["namingContexts", "supportedControl", "highestCommittedUSN",
                                         "dsServiceName", "lastchangenumber"])
    except DirectoryError as exc:
        raise NotIncremental(f"cannot read the server's root DSE: {exc}") from None
    if setting in ("auto", "syncrepl") and SYNC_CONTROL in root.get("supportedcontrol", ()):
        context = _context_of(root.get("namingcontexts", []), users_base)
        if context is None:
            raise NotIncremental(f"no naming context of the server holds {users_base!r}")
        tracker: Tracker
        if root.get("lastchangenumber"):  # 389-ds: content sync reads its retro changelog
            tracker = ContentSync389(directory, context) if directory.content_sync else ChangeNumber(directory,
                                                                                                      context)
        else:
            tracker = ContentSync(directory, context) if directory.content_sync else ContextCsn(directory, context)
        try:
            tracker.probe()
        except DirectoryError as exc:
            raise NotIncremental(f"cannot read the change marker ({tracker.describe()}): {exc}") from None
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
    if setting == "timestamp":
        return _timestamps(directory, root.get("namingcontexts", []), users_base)
    raise NotIncremental("the server offers no change marker ldapsync knows (OpenLDAP: load the syncprov "
                         "overlay; Active Directory: a domain controller's highestCommittedUSN; any other: "
                         "ldap.change_tracking: timestamp, see docs/incremental.md)")


def _timestamps(directory: Directory, contexts: list[str], users_base: str) -> Timestamps:
    context = _context_of(contexts, users_base)
    if context is None:
        raise NotIncremental(f"no naming context of the server holds {users_base!r}")
    clock = clock_of(directory)
    if clock is None:
        raise NotIncremental("ldap.change_tracking is timestamp, but the server's time cannot be read ("
                             + ", ".join(f"{attr} of {dn or 'the root DSE'}" for dn, attr in CLOCKS)
                             + "; OpenLDAP: add the monitor database, readable by the bind account)")
    try:
        id_attribute = id_attribute_of(directory, context)
    except DirectoryError as exc:
        raise NotIncremental(f"cannot read {context}: {exc}") from None
    if id_attribute is None:
        raise NotIncremental(f"ldap.change_tracking is timestamp, but {context} has neither entryUUID nor "
                             "nsUniqueId to keep entries by")
    tracker = Timestamps(directory, context, id_attribute, clock)
    try:
        tracker.probe()
    except DirectoryError as exc:
        raise NotIncremental(f"cannot read the server's time: {exc}") from None
    return tracker


def _context_of(contexts: list[str], base: str) -> str | None:
    """The naming context holding ``base`` (the longest that does)."""
    key = dnlib.normalize(base)
    holding = [c for c in contexts if dnlib.is_under(key, dnlib.normalize(c))]
    return max(holding, key=len, default=None)

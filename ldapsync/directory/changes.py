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

A server switch, an unknown or refused marker, anything doubtful: the
tracker raises :class:`NotIncremental`, and the run reads everything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ldapsync import dn as dnlib
from ldapsync.directory.base import Directory, DirectoryError, SyncAnswer

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

    def changes(self, queries: Sequence[Query], marker: dict[str, Any]) -> tuple[dict[str, SyncAnswer],
                                                                               dict[str, Any]]:
        """Each query's changes since ``marker``, and the marker after them."""
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

    def changes(self, queries: Sequence[Query], marker: dict[str, Any]) -> tuple[dict[str, SyncAnswer],
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


def tracker_for(directory: Directory, setting: str, users_base: str) -> Tracker:
    """The tracker ``ldap.change_tracking`` asks for (``auto``: what the
    server offers), for a connected directory; raises :class:`NotIncremental`
    when there is none."""
    if setting == "off":
        raise NotIncremental("ldap.change_tracking is off")
    try:
        root = directory.read_entry("", ["namingContexts", "supportedControl", "highestCommittedUSN"])
    except DirectoryError as exc:
        raise NotIncremental(f"cannot read the server's root DSE: {exc}") from None
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
    raise NotIncremental("the server offers no change marker ldapsync knows (OpenLDAP: load the syncprov "
                         "overlay)")


def _context_of(contexts: list[str], base: str) -> str | None:
    """The naming context holding ``base`` (the longest that does)."""
    key = dnlib.normalize(base)
    holding = [c for c in contexts if dnlib.is_under(key, dnlib.normalize(c))]
    return max(holding, key=len, default=None)

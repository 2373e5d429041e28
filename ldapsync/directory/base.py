"""What both directory backends share: the interface (:class:`Directory`),
entries, errors, range completion and the ldapsearch line.  The ldap3
backend is in :mod:`.ldap3_backend`, python-ldap's in :mod:`.pyldap_backend`.

Every failure ends the sync with a :class:`DirectoryError` saying what failed
and where: an unreachable server, a refused bind, a size, time or admin
limit, a referral, a dropped connection.  A partial answer is never treated
as the directory's content, because a truncated directory would wipe
contacts from everyone's roster.
"""

from __future__ import annotations

import logging
import operator
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Self

from ldapsync.config import LdapSettings
from ldapsync.directory import ranges
from ldapsync.errors import ExitCode, UserError

log = logging.getLogger(__name__)

# LDAP_SERVER_DOMAIN_SCOPE_OID: no continuation references to other partitions (AD)
DOMAIN_SCOPE = "1.2.840.113556.1.4.1339"


class DirectoryError(UserError):
    """The directory could not give a complete answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Entry:
    """A directory entry: its DN as returned and its attributes, keyed by
    lower-cased attribute name, values decoded as UTF-8 (bytes that are not
    UTF-8 kept as surrogate escapes, for later checks to catch)."""

    dn: str
    attrs: dict[str, list[str]]

    def first(self, name: str) -> str:
        values = self.attrs.get(name.lower())
        return values[0] if values else ""


def complete_ranges(directory: Directory, entries: Iterator[Entry], what: str) -> Iterator[Entry]:
    """A backend's search results with ranged attributes completed through
    its ``read_entry``: the follow-ups are counted in ``range_searches``
    (and ``searches``) and logged, the same for every backend."""

    def fetch(dn: str, wanted: str) -> dict[str, list[str]]:
        log.debug("range: %s", directory.ldapsearch_command(dn, "(objectClass=*)", [wanted], "base"))
        return directory.read_entry(dn, [wanted])

    def counted(dn: str, sizes: dict[str, int], n: int) -> None:
        directory.range_searches += n
        values = ", ".join(f"{count} {name} values" for name, count in sizes.items())
        log.info("read %s of %s in ranges, with %d more searches", values, dn, n)

    try:
        yield from ranges.completed(entries, fetch, Entry, counted)
    except ranges.RangeError as exc:
        raise DirectoryError(f"search for {what}: incomplete ranged answer: {exc}") from None


class Directory:
    """A directory to read, as the sync pipeline sees it: used as a context
    manager (entering connects and binds, leaving closes), then
    :meth:`search` and the counts ``searches`` and ``range_searches``.

    Each backend brings a bound, read-only connection to the first server
    that answers (``connect``, ``close``), paged searches streamed page by
    page (``_paged_search``) and base-scope reads (``read_entry``); here are
    the settings, the counts, the context manager and the completion of
    ranged attributes."""

    decodes_in_python = False  # True: the client, not the server, sets the pace of a large search
    content_sync = False  # True: :meth:`sync_refresh` asks for changes by RFC 4533 (python-ldap only)

    def __init__(self, settings: LdapSettings, password: str | None, *, progress: bool | None = None) -> None:
        self.settings = settings
        self._password = password
        self._conn = None
        self.searches = 0
        # of which follow-ups for ranged attributes (member;range=1500-*)
        self.range_searches = 0
        self.entries_sent = 0  # entries the server sent (searches, base reads and content-sync refreshes)
        self.url = settings.servers[0]  # then the server connected to
        self.progress = sys.stderr.isatty() if progress is None else progress

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Bind to the first server that answers (each backend its own)."""
        raise NotImplementedError

    def close(self) -> None:
        """Unbind, if bound (each backend its own)."""
        raise NotImplementedError

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]]:
        """One base-scope read of ``dn`` (each backend its own)."""
        raise NotImplementedError

    def _paged_search(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                      what: str) -> Iterator[Entry]:
        """The raw paged search behind :meth:`search` (each backend its own)."""
        raise NotImplementedError

    def sync_refresh(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                     cookie: str | None, what: str) -> SyncAnswer:
        """One RFC 4533 refreshOnly search from ``cookie`` (None: the whole
        content): what changed since, and the new cookie.  Only backends
        with ``content_sync`` have it."""
        raise NotImplementedError(f"{type(self).__name__} has no content-sync consumer")

    def search(self, base: str, filter: str, attributes: Sequence[str], scope: str = "sub",
               what: str = "entries") -> Iterator[Entry]:
        """All entries under ``base`` matching ``filter``, page by page.

        Streams: entries are decoded as pages arrive, never the whole result
        held twice.  Ranged attributes (``member;range=0-1499``) are completed
        with one base-scope search per further range, after the paged search.
        Raises :class:`DirectoryError` on any incomplete answer.
        """
        for entry in complete_ranges(self, self._paged_search(base, filter, attributes, scope, what), what):
            self.entries_sent += 1
            yield entry

    def ldapsearch_command(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                           control: str | None = None) -> str:
        return ldapsearch_command(self.settings, self.url, base, filter, attributes, scope, control)

    def _check_tls_files(self) -> None:
        """Say which setting names a missing certificate or key file, before
        the library meets it with a message that names none."""
        for key in ("ca_file", "client_cert_file", "client_key_file"):
            path = getattr(self.settings, key)
            if path is not None and not path.is_file():
                raise UserError(f"ldap.{key}: {path} does not exist or is not a file", ExitCode.NOINPUT)

    def sibling(self) -> Directory:
        """A second, unconnected directory of the same kind for the server
        this one connected to: a worker process reads over its own connection."""
        same_server = self.settings.model_copy(update={"servers": [self.url]})
        return type(self)(same_server, self._password, progress=False)


@dataclass
class SyncAnswer:
    """A content-sync refresh (RFC 4533, refreshOnly): the entries added or
    changed since the cookie, by entryUUID, in the order sent; the UUIDs
    deleted or gone out of the search's scope; and, when the server could
    not tell deletions and sent a present phase instead, every UUID still
    there (``present``: the rest is gone)."""

    changed: dict[str, Entry]
    deleted: set[str]
    present: set[str] | None
    cookie: str | None


class SearchCount:
    """The entries a search has returned so far, shown on stderr every 5,000
    when that is a terminal: what both backends keep while they stream."""

    def __init__(self, what: str, show: bool) -> None:
        self.what, self.show, self.n = what, show, 0

    def add(self) -> None:
        self.n += 1
        if self.show and self.n % 5000 == 0:
            print(f"\rfetching {self.what}: {self.n:,}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.show and self.n >= 5000:
            print("", file=sys.stderr)


def failure_kind(exc: Exception, kinds: Sequence[tuple[type[Exception], str]]) -> str:
    """The search_failed() kind of a backend's exception, from its table of
    (exception class, kind); "other" for the rest."""
    return next((kind for cls, kind in kinds if isinstance(exc, cls)), "other")


def search_failed(kind: str, what: str, base: str, count: int, detail: str = "") -> DirectoryError:
    """The error for a search that ended early, the same for every backend."""
    where = f"search for {what} under {base!r}"
    messages = {
        "reference": f"{where}: the server sent a referral to {detail}; point ldapsync at the server that holds "
                     "the data",
        "size": f"{where} stopped at the server's size limit after {count} entries; give the bind account "
                "unlimited results (OpenLDAP: limits dn.exact=\"BIND DN\" size=unlimited)",
        "time": f"{where} hit the server's time limit after {count} entries",
        "admin": f"{where} hit an administrative limit after {count} entries",
        "no-base": f"search for {what}: the base {base!r} does not exist",
        "referral": f"{where}: the server answered with a referral ({detail}); point ldapsync at the server "
                    "that holds the data",
        "other": f"{where} failed after {count} entries: {detail}",
    }
    return DirectoryError(messages[kind])


def ldapsearch_command(s: LdapSettings, url: str, base: str, filter: str, attributes: Sequence[str],
                       scope: str, control: str | None = None) -> str:
    """The same search as an ``ldapsearch`` command line, to rerun by hand;
    ``control`` is its ``-E`` option instead of paging (``sync=ro/COOKIE``)."""
    cmd = ["ldapsearch", "-LLL", "-H", url]
    if s.start_tls:
        cmd.append("-ZZ")
    if s.sasl_external:
        cmd += ["-Y", "EXTERNAL"]
    elif s.bind_dn:
        cmd += ["-x", "-D", s.bind_dn, "-W"]
    else:
        cmd.append("-x")
    cmd += ["-s", scope, "-b", base]
    if control is not None:
        cmd += ["-E", control]
    elif scope != "base":  # a base-scope search reads one entry: no paging
        cmd += ["-E", f"pr={s.page_size}/noprompt"]
        if s.domain_scope:
            cmd += ["-e", DOMAIN_SCOPE]
    cmd += [filter, *attributes]
    return " ".join(shlex.quote(c) for c in cmd)


def decode_attributes(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    """An entry's attributes as both backends return them (raw values) to
    what :class:`Entry` holds: names lower-cased, values UTF-8 with bytes
    that are not kept as surrogate escapes."""
    return {name.lower(): [v.decode("utf-8", "surrogateescape") for v in values] for name, values in raw.items()}


def changed_in_place(before: list[Entry] | None, now: list[Entry]) -> list[int] | None:
    """The positions where ``now`` holds another entry than ``before``, each
    with the same DN; None when the lists do not line up (an entry added,
    removed or renamed), or when too many changed for it to be worth it.
    Entries come in DN order, so an entry that changed sits where its old
    self was."""
    if before is None or len(before) != len(now):
        return None
    changed = [i for i, same in enumerate(map(operator.is_, before, now)) if not same]
    if len(changed) > REUSE_LIMIT or any(before[i].dn != now[i].dn for i in changed):
        return None
    return changed


REUSE_LIMIT = 10_000  # changed entries: beyond this, doing everything again costs about the same

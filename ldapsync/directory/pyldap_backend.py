"""The accelerated directory backend: python-ldap, C over the same libldap as
``ldapsearch`` (``pip install ldapsync[fast]``).

Same interface and the same promises as :class:`.ldap3_backend.Ldap3Directory`:
a bound, read-only connection to the first server that answers, paged
searches streamed page by page, and a :class:`DirectoryError` for every
incomplete answer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

import ldap
from ldap.controls import LDAPControl, SimplePagedResultsControl
from ldap.syncrepl import SyncreplConsumer

from ldapsync.directory.base import (
    DOMAIN_SCOPE,
    Directory,
    DirectoryError,
    Entry,
    SearchCount,
    SyncAnswer,
    decode_attributes,
    failure_kind,
    search_failed,
)

log = logging.getLogger("ldapsync.directory")

_SCOPES = {"base": ldap.SCOPE_BASE, "one": ldap.SCOPE_ONELEVEL, "sub": ldap.SCOPE_SUBTREE}
# How each python-ldap exception ends a search (ldapsync.directory.base.search_failed)
_FAILURES = ((ldap.SIZELIMIT_EXCEEDED, "size"), (ldap.TIMELIMIT_EXCEEDED, "time"), (ldap.ADMINLIMIT_EXCEEDED, "admin"),
             (ldap.NO_SUCH_OBJECT, "no-base"), (ldap.REFERRAL, "referral"))


class PythonLdapDirectory(Directory):
    """The python-ldap backend (see :class:`ldapsync.directory.Directory`)."""

    content_sync = True

    def _open(self, url: str) -> ldap.ldapobject.SimpleLDAPObject:
        s = self.settings
        self._check_tls_files()
        conn = ldap.initialize(url, bytes_mode=False)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, s.connect_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, s.timeout)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT,
                        ldap.OPT_X_TLS_DEMAND if s.verify_certificates else ldap.OPT_X_TLS_NEVER)
        if s.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(s.ca_file))
        if s.client_cert_file:
            conn.set_option(ldap.OPT_X_TLS_CERTFILE, str(s.client_cert_file))
            conn.set_option(ldap.OPT_X_TLS_KEYFILE, str(s.client_key_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # apply the TLS options to this connection
        return conn

    def connect(self) -> None:
        s = self.settings
        problems = []
        for url in s.servers:
            started = time.monotonic()
            try:
                conn = self._open(url)
                if s.start_tls and not url.lower().startswith("ldaps://"):
                    conn.start_tls_s()
                if s.sasl_external:
                    conn.sasl_non_interactive_bind_s("EXTERNAL")
                elif s.bind_dn:
                    conn.simple_bind_s(s.bind_dn, self._password or "")
                else:
                    conn.simple_bind_s("", "")
            except ldap.INVALID_CREDENTIALS:
                raise DirectoryError(f"{url}: bind as {s.bind_dn} refused: invalid credentials") from None
            except ldap.LDAPError as exc:
                reason = _reason(exc)
                tls = s.start_tls or url.lower().startswith("ldaps://")
                if tls and isinstance(exc, (ldap.SERVER_DOWN, ldap.CONNECT_ERROR)) and _port_open(url):
                    reason = ("TLS failed: the TLS handshake did not complete (libldap gives no reason): an "
                              "untrusted certificate (set ldap.ca_file), a certificate for another name, or a "
                              "server that does not speak TLS there")
                elif s.sasl_external and isinstance(exc, (ldap.AUTH_METHOD_NOT_SUPPORTED, ldap.AUTH_UNKNOWN)):
                    reason += ("; SASL EXTERNAL needs TLS (an ldaps:// URL or start_tls: true) and a client "
                               "certificate the server asks for and accepts")
                problems.append(f"{url}: {reason}")
                log.warning("cannot use %s: %s", url, reason)
                continue
            log.debug("connected to %s (python-ldap) in %.2f s", url, time.monotonic() - started)
            self._conn = conn
            self.url = url
            return
        raise DirectoryError("directory unavailable: " + "; ".join(problems))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._conn.unbind_s()
            self._conn = None

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]]:
        """One entry's attributes by a base-scope search (empty when the
        entry has none of them)."""
        assert self._conn is not None, "connect() first"
        self.searches += 1
        self.entries_sent += 1
        try:
            found = self._conn.search_ext_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", list(attributes),
                                            timeout=self.settings.timeout)
        except ldap.NO_SUCH_OBJECT:
            raise DirectoryError(f"{dn} vanished while it was read") from None
        except ldap.LDAPError as exc:
            raise DirectoryError(f"reading {', '.join(attributes)} of {dn} failed: {_reason(exc)}") from None
        for entry_dn, entry in found:
            if entry_dn is not None:
                return decode_attributes(entry)
        return {}

    def _paged_search(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                      what: str) -> Iterator[Entry]:
        assert self._conn is not None, "connect() first"
        attrs = sorted(set(attributes)) or ["1.1"]
        log.debug("search: %s", self.ldapsearch_command(base, filter, attrs, scope))
        started = time.monotonic()
        self.searches += 1
        count = SearchCount(what, self.progress)
        page = SimplePagedResultsControl(True, size=self.settings.page_size, cookie="")
        sent = [page, LDAPControl(DOMAIN_SCOPE, False)] if self.settings.domain_scope else [page]
        msgid = None
        try:
            msgid = self._conn.search_ext(base, _SCOPES[scope], filter, attrs, serverctrls=sent)
            while msgid is not None:
                _, data, _, controls = self._conn.result3(msgid, timeout=self.settings.timeout)
                msgid = None
                cookie = next((c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType),
                              b"")
                if cookie:  # ask for the next page now: the server prepares it while this one is decoded
                    page.cookie = cookie
                    msgid = self._conn.search_ext(base, _SCOPES[scope], filter, attrs, serverctrls=sent)
                for dn, entry in data:
                    if dn is None:  # a search continuation reference
                        raise search_failed("reference", what, base, count.n, f"{entry}")
                    count.add()
                    yield Entry(dn, decode_attributes(entry))
        except DirectoryError:
            raise
        except ldap.LDAPError as exc:
            raise search_failed(failure_kind(exc, _FAILURES), what, base, count.n, _reason(exc)) from None
        finally:
            if msgid is not None:  # the caller stopped early, or a page failed
                with contextlib.suppress(ldap.LDAPError):
                    self._conn.abandon(msgid)
            count.close()
        log.debug("search for %s returned %d entries in %.2f s", what, count.n, time.monotonic() - started)


    def sync_refresh(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                     cookie: str | None, what: str) -> SyncAnswer:
        assert self._conn is not None, "connect() first"
        attrs = sorted(set(attributes)) or ["1.1"]
        log.debug("content sync: %s (cookie %s)", self.ldapsearch_command(base, filter, attrs, scope), cookie)
        self.searches += 1
        refresh = _Refresh(self._conn, cookie)
        try:
            msgid = refresh.syncrepl_search(base, _SCOPES[scope], mode="refreshOnly", filterstr=filter,
                                            attrlist=attrs, timeout=self.settings.timeout)
            while refresh.syncrepl_poll(msgid=msgid, timeout=self.settings.timeout, all=1):
                pass
        except ldap.LDAPError as exc:
            if isinstance(exc, (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT)):
                raise search_failed("other", what, base, refresh.sent, _reason(exc)) from None
            raise ContentSyncRefused(f"content sync of {what} under {base!r} refused: {_reason(exc)}") from None
        finally:
            self.entries_sent += refresh.sent
        return refresh.answer()


class ContentSyncRefused(DirectoryError):
    """The server answered a content-sync refresh with an error (a cookie it
    no longer accepts, a search it refuses): a full read is the way on."""


class _Refresh(SyncreplConsumer):
    """One refreshOnly content sync over an open connection: python-ldap's
    consumer parses the protocol, this keeps what it reports."""

    def __init__(self, conn: ldap.ldapobject.SimpleLDAPObject, cookie: str | None) -> None:
        self._conn = conn
        self.cookie = cookie
        self.changed: dict[str, Entry] = {}
        self.deleted: set[str] = set()
        self.present: set[str] = set()
        self.present_phase = False
        self.sent = 0

    # the consumer searches and reads results through these
    def search_ext(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._conn.search_ext(*args, **kwargs)

    def result4(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._conn.result4(*args, **kwargs)

    def syncrepl_get_cookie(self) -> str | None:
        return self.cookie

    def syncrepl_set_cookie(self, cookie: str | bytes) -> None:
        self.cookie = cookie.decode("utf-8", "replace") if isinstance(cookie, bytes) else cookie

    def syncrepl_entry(self, dn: str, attrs: dict, uuid: str) -> None:
        self.sent += 1
        self.deleted.discard(uuid)
        self.changed[uuid] = Entry(dn, decode_attributes(attrs))

    def syncrepl_delete(self, uuids: list[str]) -> None:
        self.sent += len(uuids)
        for uuid in uuids:
            self.changed.pop(uuid, None)
            self.deleted.add(uuid)

    def syncrepl_present(self, uuids: list[str] | None, refreshDeletes: bool = False) -> None:  # noqa: N803
        if uuids is None:
            # the end of a phase: without refreshDeletes it was a present
            # phase, after which whatever was not named present is gone
            if not refreshDeletes:
                self.present_phase = True
            return
        self.sent += sum(1 for uuid in uuids if uuid not in self.changed)  # an entry sent is also present
        self.present.update(uuids)

    def answer(self) -> SyncAnswer:
        present = self.present | set(self.changed) if self.present_phase else None
        return SyncAnswer(self.changed, self.deleted, present, self.cookie)


def _port_open(url: str) -> bool:
    """Whether the server's port accepts TCP connections (to tell a TLS
    failure from an unreachable server)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (636 if parts.scheme.lower() == "ldaps" else 389)
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=2).close()
        return True
    except OSError:
        return False


def _reason(exc: Exception) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    desc = info.get("desc") or type(exc).__name__
    extra = info.get("info")
    text = f"{desc} ({extra})" if extra else desc
    if "certificate" in text.lower() or "tls" in text.lower():
        text = f"TLS failed: {text}"
    return text

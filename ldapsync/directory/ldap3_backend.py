"""The ldap3 backend: one bound connection, paged searches, in pure Python.

Every failure ends the sync with a :class:`DirectoryError` saying what failed
and where: an unreachable server, a refused bind, a size, time or admin
limit, a referral, a dropped connection.  A partial answer is never treated
as the directory's content, because a truncated directory would wipe
contacts from everyone's roster.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import math
import re
import ssl
import time
from collections.abc import Iterator, Sequence

import ldap3
from ldap3.core import exceptions as ldap_errors

from ldapsync.directory.base import (
    DOMAIN_SCOPE,
    Directory,
    DirectoryError,
    Entry,
    SearchCount,
    decode_attributes,
    failure_kind,
    search_failed,
)

log = logging.getLogger("ldapsync.directory")

_SCOPES = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
# How each ldap3 exception ends a search (ldapsync.directory.base.search_failed)
_FAILURES = ((ldap_errors.LDAPSizeLimitExceededResult, "size"), (ldap_errors.LDAPTimeLimitExceededResult, "time"),
             (ldap_errors.LDAPAdminLimitExceededResult, "admin"), (ldap_errors.LDAPNoSuchObjectResult, "no-base"))


class Ldap3Directory(Directory):
    """The ldap3 backend (see :class:`ldapsync.directory.Directory`)."""

    decodes_in_python = True

    def _tls(self) -> ldap3.Tls:
        s = self.settings
        # ldap3 opens these only when it connects (or, for ca_file, raises an
        # exception that is no UserError)
        self._check_tls_files()
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED if s.verify_certificates else ssl.CERT_NONE,
            ca_certs_file=str(s.ca_file) if s.ca_file else None,
            local_certificate_file=str(s.client_cert_file) if s.client_cert_file else None,
            local_private_key_file=str(s.client_key_file) if s.client_key_file else None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def connect(self) -> None:
        """Try each server in order; the first that connects and binds wins."""
        s = self.settings
        problems = []
        tls = self._tls()
        # Plain dicts for the attributes of each entry: decode_attributes() lower-cases
        # the names itself, and ldap3's case-insensitive dict would only add
        # a cost to every entry.  (A process-wide ldap3 setting; ldapsync is
        # its only user in the process.)
        ldap3.set_config_parameter("CASE_INSENSITIVE_ATTRIBUTE_NAMES", False)
        for url in s.servers:
            server = ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=s.connect_timeout, tls=tls)
            # auto_range off: ldap3 would follow member;range= answers itself, uncounted
            # and unchecked; ldapsync.directory.ranges does it for both backends.  (With
            # auto_range off, ldap3 2.9.1 needs return_empty_attributes off too, or
            # an explicitly ranged request ends in a KeyError inside ldap3.)
            kwargs = dict(
                receive_timeout=math.ceil(s.timeout), read_only=True, raise_exceptions=True, auto_referrals=False,
                return_empty_attributes=False, auto_range=False,
            )
            if s.sasl_external:
                # Empty credentials, not none: "authorize as the certificate's identity" in the
                # first message. Without them slapd answers saslBindInProgress (an empty
                # challenge) and ldap3 stops there, unbound.
                conn = ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL,
                                        sasl_credentials="", **kwargs)
            elif s.bind_dn:
                conn = ldap3.Connection(server, user=s.bind_dn, password=self._password or "",
                                        authentication=ldap3.SIMPLE, **kwargs)
            else:
                conn = ldap3.Connection(server, authentication=ldap3.ANONYMOUS, **kwargs)
            started = time.monotonic()
            try:
                conn.open()
                if s.start_tls and not url.lower().startswith("ldaps://"):
                    conn.start_tls()
                if not conn.bind():
                    # ldap3 does not raise for every unsuccessful bind (saslBindInProgress)
                    result = conn.result or {}
                    message = f" ({result['message']})" if result.get("message") else ""
                    raise ldap_errors.LDAPBindError(f"bind failed: {result.get('description')}{message}")
            except ldap_errors.LDAPInvalidCredentialsResult:
                raise DirectoryError(f"{url}: bind as {s.bind_dn} refused: invalid credentials") from None
            except ldap_errors.LDAPException as exc:
                reason = _reason(exc)
                if s.sasl_external and isinstance(exc, ldap_errors.LDAPAuthMethodNotSupportedResult):
                    reason += ("; SASL EXTERNAL needs TLS (an ldaps:// URL or start_tls: true) and a client "
                               "certificate the server asks for and accepts")
                problems.append(f"{url}: {reason}")
                log.warning("cannot use %s: %s", url, reason)
                _quiet_unbind(conn)
                continue
            log.debug("connected to %s as %s in %.2f s", url,
                      "SASL EXTERNAL" if s.sasl_external else s.bind_dn or "anonymous", time.monotonic() - started)
            self._conn = conn
            self.url = url
            return
        raise DirectoryError("directory unavailable: " + "; ".join(problems))

    def close(self) -> None:
        if self._conn is not None:
            _quiet_unbind(self._conn)
            self._conn = None

    def _paged_search(self, base: str, filter: str, attributes: Sequence[str], scope: str,
                      what: str) -> Iterator[Entry]:
        assert self._conn is not None, "connect() first"
        s = self.settings
        attrs = sorted(set(attributes)) or ["1.1"]
        log.debug("search: %s", self.ldapsearch_command(base, filter, attrs, scope))
        started = time.monotonic()
        self.searches += 1
        count = SearchCount(what, self.progress)
        try:
            results = self._conn.extend.standard.paged_search(
                search_base=base, search_filter=filter, search_scope=_SCOPES[scope], attributes=attrs,
                paged_size=s.page_size, generator=True,
                controls=[(DOMAIN_SCOPE, False, None)] if s.domain_scope else None,
            )
            for item in results:
                kind = item.get("type")
                if kind == "searchResRef":
                    raise search_failed("reference", what, base, count.n, f"{item.get('uri')}")
                if kind != "searchResEntry":
                    continue
                count.add()
                yield Entry(item["dn"], decode_attributes(item["raw_attributes"]))
            # ldap3 does not raise for these results, which end a search early
            final = self._conn.result or {}
            code = final.get("result", 0)
            kind = {4: "size", 3: "time", 11: "admin", 10: "referral"}.get(code, "other")
            if code != 0:
                detail = (f"to {final.get('referrals')}" if kind == "referral"
                          else f"result {code}, {final.get('description')}")
                raise search_failed(kind, what, base, count.n, detail)
        except DirectoryError:
            raise
        except ldap_errors.LDAPException as exc:
            raise search_failed(failure_kind(exc, _FAILURES), what, base, count.n, _reason(exc)) from None
        finally:
            count.close()
        log.debug("search for %s returned %d entries in %.2f s", what, count.n, time.monotonic() - started)

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, list[str]]:
        """One entry's attributes by a base-scope search (empty when the
        entry has none of them)."""
        assert self._conn is not None, "connect() first"
        self.searches += 1
        self.entries_sent += 1
        try:
            self._conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes))
        except ldap_errors.LDAPNoSuchObjectResult:
            raise DirectoryError(f"{dn} vanished while it was read") from None
        except ldap_errors.LDAPException as exc:
            raise DirectoryError(f"reading {', '.join(attributes)} of {dn} failed: {_reason(exc)}") from None
        for item in self._conn.response or ():
            if item.get("type") == "searchResEntry":
                return decode_attributes(item["raw_attributes"])
        return {}


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ldap_errors.LDAPOperationResult):
        text = f"{exc.description or type(exc).__name__}" + (f" ({exc.message})" if exc.message else "")
    tls = _tls_reason(exc, text)
    if tls:
        return tls
    if isinstance(exc, ldap_errors.LDAPSocketOpenError) and "certificate" in text.lower():
        text = f"TLS failed: {text}"
    return text


# ldap3 wraps ssl errors in exceptions whose text may be the repr of a tuple of
# their text; the OpenSSL message inside reads "[SSL: CODE] message (_ssl.c:N)".
_SSL_MESSAGE = re.compile(r"\[SSL(?:: (?P<code>[A-Z0-9_]+))?\] (?P<message>.*?)(?: \(_ssl\.c:\d+\)|['\"]|$)")
# ldap3's own host name check: "certificate {getpeercert() dict} doesn't match any name in [names]"
_NAME_MISMATCH = re.compile(r"certificate (?P<cert>\{.*\}) doesn't match any name in (?P<names>\[.*?\])")


def _tls_reason(exc: Exception, text: str) -> str | None:
    """One line for a failed TLS handshake (ldaps:// or StartTLS), else None."""
    mismatch = _NAME_MISMATCH.search(text)
    if mismatch or isinstance(exc, ldap_errors.LDAPCertificateError):
        # the names, when ldap3's message holds them in a shape we can read
        with contextlib.suppress(TypeError, ValueError, SyntaxError, AttributeError):
            if mismatch is not None:
                cert = ast.literal_eval(mismatch["cert"])
                wanted = ", ".join(ast.literal_eval(mismatch["names"]))
                alt = [f"{kind}:{value}" for kind, value in cert.get("subjectAltName", ())]
                cns = [f"CN={value}" for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
                return (f"TLS failed: the server's certificate is for {', '.join(alt or cns) or 'no host name'}, "
                        f"not for {wanted}; connect by a name the certificate holds")
        return "TLS failed: the server's certificate does not hold the host name of the URL"
    found = _SSL_MESSAGE.search(text)
    if found is None and not isinstance(exc, ssl.SSLError):
        return None
    message = found["message"] if found else text
    if (found and found["code"] == "CERTIFICATE_VERIFY_FAILED") or isinstance(exc, ssl.SSLCertVerificationError):
        detail = message.split("certificate verify failed: ", 1)[-1]
        return (f"TLS failed: the server's certificate is not trusted ({detail}); set ldap.ca_file to the "
                "CA certificate that issued it")
    return f"TLS failed: {message}"


def _quiet_unbind(conn: ldap3.Connection) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection may fail in any way
        conn.unbind()

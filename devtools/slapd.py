"""A throwaway OpenLDAP slapd on 127.0.0.1 for tests, demos and benchmarks.

Data is loaded offline with slapadd before slapd starts (seconds for 100k
entries, where ldapadd takes minutes). slapadd runs no overlays, so LDIF files
must already carry the memberOf values the memberof overlay would have written.

With tls=True (serve --tls) the openssl command line makes a throwaway CA in
DIR/tls, a server certificate signed by it and a client certificate whose
subject slapd maps to the sync account for SASL EXTERNAL; slapd then also
listens on ldaps://127.0.0.1:TLS_PORT/ and offers StartTLS on the ldap:// port.

With syncprov=True (serve --syncprov) slapd also runs the syncprov overlay:
the suffix entry carries contextCSN (slapadd -w writes it at load time), and
RFC 4533 content sync with a cookie sends only the entries changed since,
plus the entryUUIDs of those deleted or moved out of the search's scope.

With monitor=True (serve --monitor) slapd also runs the monitor database:
cn=Current,cn=Time,cn=Monitor tells the server's time to bound accounts.

    python -m devtools.slapd serve --dir DIR --ldif FILE [--ldif FILE ...] [--port N] [--tls [--tls-port N]]
                                   [--syncprov] [--monitor]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.process import LdapServer, serve_until_stopped, stop_on_signals, which

BASE = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "admin-secret"
# The accounts themselves live in the loaded LDIF; the config only grants limits.
SYNC_DN = f"cn=ldapsync,ou=services,{BASE}"
SYNC_PASSWORD = "sync-secret"
LIMITED_DN = f"cn=limited,ou=services,{BASE}"
LIMITED_PASSWORD = "limited-secret"

MODULE_PATH = Path("/usr/lib/ldap")
SCHEMA_DIR = Path("/etc/ldap/schema")
TEST_SCHEMA = Path(__file__).with_name("ldapsync-test.schema")
START_TIMEOUT = 10.0
# The names the server certificate holds by default (subjectAltName DNS and IP).
TLS_NAMES = ("localhost", "127.0.0.1")
# The client certificate's subject, as slapd normalises it for SASL EXTERNAL;
# authz-regexp maps it to SYNC_DN, so it holds no regular expression metacharacters.
CLIENT_CERT_SUBJECT = "cn=ldapsync-client,o=ldapsync tests"
CERT_DAYS = 7

CONFIG = """\
# Written by devtools.slapd: a throwaway slapd for ldapsync's tests.
include "{schema}/core.schema"
include "{schema}/cosine.schema"
include "{schema}/nis.schema"
include "{schema}/inetorgperson.schema"
include "{test_schema}"

pidfile "{dir}/slapd.pid"
argsfile "{dir}/slapd.args"
modulepath "{modules}"
moduleload back_mdb
moduleload memberof

# The OpenLDAP default, spelled out: accounts without a limits line get 500 entries.
sizelimit 500

# The root DSE and the schema, for clients that read them (ldap3 get_info).
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read

database mdb
suffix "{base}"
rootdn "{admin_dn}"
rootpw "{admin_password}"
directory "{dir}/db"
maxsize 1073741824

index objectClass eq
index uid,memberUid eq
index member,uniqueMember,memberOf eq

limits dn.exact="{sync_dn}" size=unlimited time=unlimited

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by * read

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
"""

# Appended with refint=True: deleting or renaming an entry also removes or
# renames it in the member values of groups. The refint overlay, not
# memberof-refint: memberof marks its own writes as not to be replicated, so
# they change neither entryCSN nor what syncprov sends.
REFINT_CONFIG = """\
overlay refint
refint_attributes member
refint_nothing "cn=nobody"
"""

# Appended to the database section when syncprov is on. Overlays configured
# later run earlier; syncprov comes last so that it sees every write that
# reaches the database, including those memberof makes internally.
SYNCPROV_CONFIG = """\
index entryUUID,entryCSN eq

overlay syncprov
syncprov-checkpoint 100 10
# Deletions since a cookie come from this log instead of a present phase that
# lists every entry in scope.
syncprov-sessionlog {sessionlog}
"""

# Appended last with monitor=True (after the data's database, so that slapadd
# and slapcat still find that one first): back-monitor, whose
# cn=Current,cn=Time,cn=Monitor tells the server's time (monitorTimestamp),
# readable by every bound account.
MONITOR_CONFIG = """\
database monitor
access to dn.subtree="cn=Monitor"
    by users read
    by * none
"""

# Appended before the database section when TLS is on (global directives).
TLS_CONFIG = """\
TLSCACertificateFile "{ca_file}"
TLSCertificateFile "{cert_file}"
TLSCertificateKeyFile "{key_file}"
# Ask for a client certificate, accept connections without one.
TLSVerifyClient allow
# SASL EXTERNAL over TLS authenticates as the certificate's subject DN.
authz-regexp "^{client_subject}$" "{sync_dn}"

"""

# Extensions for `openssl req -x509` / `openssl x509 -req`; no system openssl.cnf.
OPENSSL_CONFIG = """\
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_SRCH = re.compile(rb" op=\d+ SRCH base=")


def missing() -> str | None:
    """None when slapd can run here, else the reason it cannot."""
    for tool in ("slapd", "slapadd"):
        if which(tool) is None:
            return f"{tool} is not installed (Debian packages slapd, ldap-utils)"
    if not (MODULE_PATH / "back_mdb.so").exists():
        return f"{MODULE_PATH}/back_mdb.so is missing (Debian package slapd)"
    return None


def tls_missing() -> str | None:
    """None when Slapd(tls=True) can make its certificates here, else why not."""
    if shutil.which("openssl") is None:
        return "the openssl command is not installed (Debian package openssl)"
    return None


def _subject_arg(dn: str) -> str:
    """"cn=a,o=b" (LDAP order) as openssl's "/O=b/CN=a"."""
    return "".join("/" + rdn.split("=", 1)[0].upper() + "=" + rdn.split("=", 1)[1] for rdn in reversed(dn.split(",")))


def make_certificates(directory: Path, server_names: Sequence[str] = TLS_NAMES,
                      client_subject: str = CLIENT_CERT_SUBJECT) -> None:
    """Write ca.pem/ca.key, server.pem/server.key (signed by the CA, for
    server_names) and client.pem/client.key (subject client_subject) into
    directory, with the openssl command line. Keys are unencrypted PKCS#8 RSA,
    which both slapd's GnuTLS and Python's ssl read."""
    directory.mkdir(parents=True, exist_ok=True)
    san = ", ".join(("IP:" if _is_ip(n) else "DNS:") + n for n in server_names)
    cnf = directory / "openssl.cnf"
    cnf.write_text(OPENSSL_CONFIG.format(san=san))

    def openssl(*args: str) -> None:
        out = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=directory, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{out.stdout}{out.stderr}")

    common = ["-days", str(CERT_DAYS), "-sha256"]
    openssl("req", "-x509", "-config", str(cnf), "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-subj", "/O=ldapsync tests/CN=ldapsync throwaway test CA",
            "-extensions", "ca_ext", *common)
    for name, subject, ext in (
        ("server", f"/O=ldapsync tests/CN={server_names[0] if server_names else 'slapd'}", "server_ext"),
        ("client", _subject_arg(client_subject), "client_ext"),
    ):
        openssl("req", "-new", "-config", str(cnf), "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", subject)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
                str(int.from_bytes(os.urandom(8), "big")), "-extfile", str(cnf),
                "-extensions", ext, "-out", f"{name}.pem", *common)
        (directory / f"{name}.csr").unlink()
    for key in directory.glob("*.key"):
        key.chmod(0o600)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bulk_users_ldif(n: int, base: str = f"ou=bulk,{BASE}") -> str:
    """LDIF for an organizationalUnit at `base` holding n plain users bulk00001..."""
    ou = base.split(",", 1)[0].split("=", 1)[1]
    parts = [f"dn: {base}\nobjectClass: organizationalUnit\nou: {ou}\n"]
    for i in range(1, n + 1):
        uid = f"bulk{i:05d}"
        parts.append(
            f"dn: uid={uid},{base}\n"
            "objectClass: inetOrgPerson\n"
            f"uid: {uid}\n"
            f"cn: Bulk User {i}\n"
            "sn: User\n"
            f"displayName: Bulk User {i}\n"
            f"mail: {uid}@example.com\n"
        )
    return "\n".join(parts)


class Slapd(LdapServer):
    """One slapd process whose config, database, pid file and log all live in
    `directory`. The first start() loads the LDIF into a fresh database;
    restart() keeps the data.

    tls=True also makes certificates in `directory`/tls (see make_certificates;
    the server's for tls_names), offers StartTLS on `url` and listens on
    `ldaps_url`; `ca_file`, `client_cert_file` and `client_key_file` name the
    files a client needs. A client presenting the client certificate over TLS
    binds with SASL EXTERNAL as SYNC_DN."""

    name = "slapd"

    def __init__(
        self,
        directory: Path,
        ldif: list[Path] | None = None,
        extra_ldif_text: str = "",
        port: int | None = None,
        *,
        tls: bool = False,
        tls_port: int | None = None,
        tls_names: Sequence[str] = TLS_NAMES,
        syncprov: bool = False,
        sessionlog: int = 100000,
        refint: bool = False,
        monitor: bool = False,
    ) -> None:
        self.dir = Path(directory)
        self.ldif = [Path(p) for p in ldif or []]
        self.extra_ldif_text = extra_ldif_text
        self.port = port or free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.admin_dn, self.admin_password = ADMIN_DN, ADMIN_PASSWORD
        self.tls = tls
        self.tls_names = tuple(tls_names)
        self.tls_port: int | None = None
        self.ldaps_url: str | None = None
        self.ca_file = self.server_cert_file = self.server_key_file = None
        self.client_cert_file = self.client_key_file = None
        if tls:
            self.tls_port = tls_port or free_port()
            while self.tls_port == self.port:
                self.tls_port = free_port()
            self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}"
            certs = self.dir / "tls"
            self.ca_file = certs / "ca.pem"
            self.server_cert_file, self.server_key_file = certs / "server.pem", certs / "server.key"
            self.client_cert_file, self.client_key_file = certs / "client.pem", certs / "client.key"
        self.syncprov = syncprov
        self.sessionlog = sessionlog
        self.refint = refint
        self.monitor = monitor
        self.config = self.dir / "slapd.conf"
        super().__init__(self.dir / "slapd.log")
        self._loaded = False

    def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("slapd is already running")
        if not self._loaded:
            self._load()
        listen = f"{self.url}/" + (f" {self.ldaps_url}/" if self.tls else "")
        self.launch([which("slapd") or "slapd", "-h", listen, "-f", str(self.config), "-d", "stats"], cwd=self.dir)
        self.wait_for_ports("127.0.0.1", [self.port, *([self.tls_port] if self.tls else [])], START_TIMEOUT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _load(self) -> None:
        """Write the config and slapadd every LDIF into an empty database."""
        self.dir.mkdir(parents=True, exist_ok=True)
        db = self.dir / "db"
        shutil.rmtree(db, ignore_errors=True)
        db.mkdir()
        config = CONFIG.format(
            schema=SCHEMA_DIR, test_schema=TEST_SCHEMA, dir=self.dir, modules=MODULE_PATH,
            base=BASE, admin_dn=ADMIN_DN, admin_password=ADMIN_PASSWORD, sync_dn=SYNC_DN,
        )
        if self.tls:
            make_certificates(self.ca_file.parent, self.tls_names)
            head, database, tail = config.partition("database mdb\n")
            config = head + TLS_CONFIG.format(
                ca_file=self.ca_file, cert_file=self.server_cert_file, key_file=self.server_key_file,
                client_subject=CLIENT_CERT_SUBJECT, sync_dn=SYNC_DN,
            ) + database + tail
        if self.refint:
            config = config.replace("moduleload memberof\n", "moduleload memberof\nmoduleload refint\n")
            config += "\n" + REFINT_CONFIG
        if self.syncprov:
            config = config.replace("moduleload memberof\n", "moduleload memberof\nmoduleload syncprov\n")
            config += "\n" + SYNCPROV_CONFIG.format(sessionlog=self.sessionlog)
        if self.monitor:
            config += "\n" + MONITOR_CONFIG
        self.config.write_text(config)
        files = list(self.ldif)
        if self.extra_ldif_text:
            extra = self.dir / "extra.ldif"
            extra.write_text(self.extra_ldif_text, encoding="utf-8")
            files.append(extra)
        for path in files:
            out = subprocess.run(
                [which("slapadd") or "slapadd", "-q", *(["-w"] if self.syncprov else []),
                 "-f", str(self.config), "-l", str(path)],
                capture_output=True, text=True, timeout=600,
            )
            if out.returncode != 0:
                raise RuntimeError(f"slapadd {path} failed:\n{out.stdout}{out.stderr}")
        self._loaded = True

    def backup(self, path: Path) -> None:
        """slapcat the database to an LDIF file, operational attributes
        (entryUUID, entryCSN) and all, as a directory admin's backup would."""
        out = subprocess.run([which("slapcat") or "slapcat", "-f", str(self.config), "-l", str(path)],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"slapcat failed:\n{out.stdout}{out.stderr}")

    def restore(self, path: Path) -> None:
        """Stop, replace the database with a backup() and start again: the
        directory goes back in time, contextCSN included."""
        self.stop()
        self.ldif, self.extra_ldif_text, self._loaded = [Path(path)], "", False
        self.start()

    def mark(self) -> int:
        """A position in the log, for search_count(); the log survives restarts."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def search_count(self, since: int = 0) -> int:
        """How many search operations slapd received since mark(). Each page of
        a paged search is one operation; so is each root DSE or schema read."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return len(_SRCH.findall(log.read()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.slapd", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="load LDIF, start slapd, print its URL, run until SIGTERM/SIGINT")
    serve.add_argument("--dir", type=Path, required=True, help="working directory (config, database, log)")
    serve.add_argument("--ldif", type=Path, action="append", default=[], help="LDIF file to load (repeatable)")
    serve.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--tls", action="store_true",
                       help="also make a throwaway CA and certificates in DIR/tls, offer StartTLS and listen on "
                            "ldaps://; prints the ldaps:// URL on a second line")
    serve.add_argument("--tls-port", type=int, help="ldaps:// port on 127.0.0.1 with --tls (default: a free one)")
    serve.add_argument("--syncprov", action="store_true",
                       help="also run the syncprov overlay (contextCSN, RFC 4533 content sync with a session log) "
                            "and the refint overlay on member")
    serve.add_argument("--monitor", action="store_true",
                       help="also run the monitor database (the server's time in cn=Current,cn=Time,cn=Monitor)")
    args = parser.parse_args(argv)

    reason = missing() or (tls_missing() if args.tls else None)
    if reason:
        print(reason, file=sys.stderr)
        return 2
    received = stop_on_signals()
    with Slapd(args.dir.resolve(), args.ldif, port=args.port, tls=args.tls, tls_port=args.tls_port,
               syncprov=args.syncprov, refint=args.syncprov, monitor=args.monitor) as server:
        print(server.url, flush=True)
        if server.tls:
            print(server.ldaps_url, flush=True)
            print(f"CA {server.ca_file}, client certificate {server.client_cert_file} "
                  f"(key {server.client_key_file}) binds with SASL EXTERNAL as {SYNC_DN}", file=sys.stderr, flush=True)
        return serve_until_stopped(server, received)


if __name__ == "__main__":
    sys.exit(main())

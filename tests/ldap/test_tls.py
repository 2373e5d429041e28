"""TLS against a real slapd: ldaps://, StartTLS, certificate and host name
checks, the verify_certificates escape hatch and SASL EXTERNAL.

devtools.slapd makes a throwaway CA per server; the system trust store does
not know it, so a config without ca_file must fail. A second server whose
certificate names only wrong.example (signed by its own CA, which the test
trusts) proves that host names are checked, not only the chain.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import ldap3
import pytest

from devtools import slapd as harness
from ldapsync.groupsfile import read
from tests.conftest import need
from tests.ldap.conftest import HOST, run
from tests.ldap.directory import BASE, BULK, BULK_USERS, LDIF, SYNC_DN, USERS

OLD = b"[Old]\nkeep@example.com=Keep me\n"


@pytest.fixture(scope="session")
def slapd_tls(tmp_path_factory):
    """The shared directory plus ou=bulk, on ldap:// (StartTLS) and ldaps://,
    with a certificate for localhost and 127.0.0.1 from a throwaway CA."""
    need(harness.missing() or harness.tls_missing())
    server = harness.Slapd(
        tmp_path_factory.mktemp("slapd-tls"), [LDIF],
        extra_ldif_text=harness.bulk_users_ldif(BULK_USERS, BULK), tls=True,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slapd_wrong_name(tmp_path_factory):
    """A TLS slapd whose (properly signed) certificate names only wrong.example."""
    need(harness.missing() or harness.tls_missing())
    server = harness.Slapd(tmp_path_factory.mktemp("slapd-wrong-name"), [LDIF], tls=True,
                           tls_names=["wrong.example"])
    server.start()
    yield server
    server.stop()


def run_json(capsys, config) -> tuple[int, dict | None, str]:
    code, out, err = run(capsys, "run", "-c", config, "--json")
    return code, json.loads(out) if out.strip() else None, err


def engineering(path: Path) -> set[str]:
    parsed = read(path)
    assert parsed.diagnostics == ()
    return set(dict(parsed.groups["Engineering"]))


def jids(*names: str) -> set[str]:
    return {f"{n}@{HOST}" for n in names}


def assert_synced(capsys, config, target: Path) -> dict:
    code, report, err = run_json(capsys, config)
    assert code == 0, err
    assert report["outputs"][0]["written"] is True
    assert engineering(target) == jids("alice", "bob", "carol")  # carol through the nested platform group
    return report


def assert_refused(capsys, config, target: Path, url: str) -> str:
    """Exit 69, one line naming the URL, and the old groups file untouched."""
    target.write_bytes(OLD)
    code, _, err = run_json(capsys, config)
    assert code == 69, err
    lines = [line for line in err.splitlines() if "directory unavailable" in line]
    assert len(lines) == 1, err
    assert url in lines[0] and "TLS failed" in lines[0], err
    assert target.read_bytes() == OLD
    return lines[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["ip-san", "dns-san"])
def test_ldaps_with_the_ca_file(capsys, make_config, tmp_path, slapd_tls, host, backend):
    if backend == "python-ldap" and host == "localhost":
        pytest.skip("libldap, like ldapsearch, checks the certificate against the name 'localhost' resolves "
                    "to in reverse on this machine, not against 'localhost'")
    url = slapd_tls.ldaps_url.replace("127.0.0.1", host)
    config = make_config(ldap={"servers": [url], "ca_file": str(slapd_tls.ca_file)})
    assert_synced(capsys, config, tmp_path / "groups.txt")


def test_start_tls_with_the_ca_file(capsys, make_config, tmp_path, slapd_tls):
    mark = slapd_tls.mark()
    config = make_config(ldap={"servers": [slapd_tls.url], "start_tls": True, "ca_file": str(slapd_tls.ca_file)})
    assert_synced(capsys, config, tmp_path / "groups.txt")
    log = slapd_tls.log_path.read_bytes()[mark:]
    assert b" STARTTLS" in log and b"TLS established" in log  # on the ldap:// port, before the bind


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_an_unknown_ca_is_refused_and_the_file_kept(capsys, make_config, tmp_path, slapd_tls, start_tls,
                                                    backend):
    url = slapd_tls.url if start_tls else slapd_tls.ldaps_url
    config = make_config(ldap={"servers": [url], "start_tls": start_tls})
    line = assert_refused(capsys, config, tmp_path / "groups.txt", url)
    assert "ca_file" in line
    if backend == "ldap3":  # libldap does not say why a handshake failed
        assert "certificate is not trusted" in line


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_a_certificate_for_another_host_is_refused(capsys, make_config, tmp_path, slapd_wrong_name, start_tls,
                                                   backend):
    """The chain is trusted (its CA is ca_file): only the host name is wrong."""
    url = slapd_wrong_name.url if start_tls else slapd_wrong_name.ldaps_url
    config = make_config(ldap={"servers": [url], "start_tls": start_tls, "ca_file": str(slapd_wrong_name.ca_file)})
    line = assert_refused(capsys, config, tmp_path / "groups.txt", url)
    if backend == "ldap3":  # libldap does not say why a handshake failed
        assert "DNS:wrong.example" in line and "not for 127.0.0.1" in line
    else:
        assert "a certificate for another name" in line


def test_verify_certificates_false_accepts_an_unknown_ca(capsys, make_config, tmp_path, slapd_tls):
    config = make_config(ldap={"servers": [slapd_tls.ldaps_url], "verify_certificates": False})
    assert_synced(capsys, config, tmp_path / "groups.txt")


def test_verify_certificates_false_accepts_a_wrong_host_name(capsys, make_config, tmp_path, slapd_wrong_name):
    config = make_config(ldap={"servers": [slapd_wrong_name.ldaps_url], "verify_certificates": False})
    assert_synced(capsys, config, tmp_path / "groups.txt")


def external(server: harness.Slapd, url: str, **extra) -> dict:
    return {"servers": [url], "ca_file": str(server.ca_file), "bind_dn": None, "bind_password_file": None,
            "sasl_external": True, "client_cert_file": str(server.client_cert_file),
            "client_key_file": str(server.client_key_file), **extra}


@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_sasl_external_binds_as_the_sync_account(capsys, make_config, tmp_path, slapd_tls, start_tls):
    """Users from the whole tree (610, beyond the default size limit of 500):
    only the sync account's `limits size=unlimited` lets that search finish."""
    url = slapd_tls.url if start_tls else slapd_tls.ldaps_url
    mark = slapd_tls.mark()
    config = make_config(ldap=external(slapd_tls, url, start_tls=start_tls), users={"base": BASE})
    report = assert_synced(capsys, config, tmp_path / "groups.txt")
    assert report["counts"]["users_read"] == USERS + BULK_USERS
    log = slapd_tls.log_path.read_bytes()[mark:]
    assert f'BIND dn="{SYNC_DN}" mech=EXTERNAL'.encode() in log


def test_sasl_external_without_tls_says_it_needs_tls(capsys, make_config, tmp_path, slapd_tls):
    config = make_config(ldap=external(slapd_tls, slapd_tls.url))
    (tmp_path / "groups.txt").write_bytes(OLD)
    code, _, err = run_json(capsys, config)
    assert code == 69, err
    assert slapd_tls.url in err and "SASL EXTERNAL needs TLS" in err
    assert (tmp_path / "groups.txt").read_bytes() == OLD


def test_a_missing_ca_file_is_named(capsys, make_config, tmp_path, slapd_tls):
    missing = tmp_path / "no-such-ca.pem"
    code, _, err = run_json(capsys, make_config(ldap={"servers": [slapd_tls.ldaps_url], "ca_file": str(missing)}))
    assert code == 66, err
    assert "ldap.ca_file" in err and str(missing) in err and "Traceback" not in err


def test_harness_maps_the_client_certificate_to_the_sync_account(slapd_tls):
    """What the tests above rely on, checked with ldap3 alone."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(slapd_tls.ca_file),
                    local_certificate_file=str(slapd_tls.client_cert_file),
                    local_private_key_file=str(slapd_tls.client_key_file))
    conn = ldap3.Connection(ldap3.Server(slapd_tls.ldaps_url, get_info=ldap3.NONE, tls=tls),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True, raise_exceptions=True)
    try:
        assert conn.extend.standard.who_am_i() == f"dn:{SYNC_DN}"
        entries = list(conn.extend.standard.paged_search(BASE, "(objectClass=inetOrgPerson)", attributes=["uid"],
                                                         paged_size=100, generator=True))
        assert conn.result["result"] == 0
        assert len([e for e in entries if e["type"] == "searchResEntry"]) == USERS + BULK_USERS
    finally:
        conn.unbind()

"""A real slapd holding the shared test directory, started once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devtools import slapd as harness
from ldapsync.cli import main
from tests.conftest import need
from tests.ldap import syncprov_directory
from tests.ldap.directory import BULK, BULK_USERS, GROUPS, LDIF, PEOPLE, SYNC_DN, SYNC_PASSWORD

HOST = "example.com"


@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    """data/directory.ldif plus BULK_USERS users under ou=bulk (more than the
    default sizelimit of 500), loaded offline; tests must not change the data."""
    need(harness.missing())
    server = harness.Slapd(
        tmp_path_factory.mktemp("slapd"), [LDIF],
        extra_ldif_text=harness.bulk_users_ldif(BULK_USERS, BULK),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def syncprov_slapd(tmp_path_factory):
    """A second slapd, with the syncprov and refint overlays and the monitor
    database (the server's time, for the timestamp method), holding the small
    directory of syncprov_directory; the incremental-sync tests change its data
    at will (the shared `slapd` must stay as loaded)."""
    need(harness.missing())
    server = harness.Slapd(tmp_path_factory.mktemp("syncprov"), extra_ldif_text=syncprov_directory.ldif(),
                           syncprov=True, refint=True, monitor=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_config(tmp_path, slapd, backend):
    """Write a config for the test slapd; keyword arguments override sections."""

    def make(*, ldap=None, users=None, groups=None, mapping=None, outputs=None, static_groups=None,
             password=SYNC_PASSWORD) -> Path:
        secret = tmp_path / "bind.password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        data = {
            "ldap": {"servers": [slapd.url], "bind_dn": SYNC_DN, "bind_password_file": str(secret),
                     "page_size": 100, "backend": backend, **(ldap or {})},
            "users": {"base": PEOPLE, **(users or {})},
            "groups": {"base": GROUPS, "public": ["All Staff"], **(groups or {})},
            "mapping": {"jid": "{{ uid | lower }}@example.com",
                        "name": "{{ displayName or (givenName ~ ' ' ~ sn) }}", **(mapping or {})},
            "outputs": outputs or [{"path": str(tmp_path / "groups.txt"), "host": HOST}],
        }
        if static_groups:
            data["static_groups"] = static_groups
        path = tmp_path / "ldapsync.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        path.chmod(0o600)
        return path

    return make


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run the ldapsync CLI in-process: exit code, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err

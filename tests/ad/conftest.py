"""A real Samba AD domain controller holding the AD test domain
(tests/ad/directory.py), provisioned and seeded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from devtools import samba as harness
from tests.ad.directory import CORP, CYCLE, GROUPS, SYNC_DN, SYNC_PASSWORD, entries
from tests.conftest import need

HOST = "example.test"


@pytest.fixture(scope="session")
def samba(tmp_path_factory):
    """The DC, on its own loopback address; tests must not change the data."""
    if os.geteuid() != 0:
        # skipped even with LDAPSYNC_REQUIRE_REAL=1: CI runs as root, where a missing Samba fails
        pytest.skip("a Samba AD DC needs root")
    need(harness.missing())
    dc = harness.SambaDC(tmp_path_factory.mktemp("samba"), entries(), {SYNC_DN: SYNC_PASSWORD}, links=[CYCLE])
    dc.start()
    yield dc
    dc.stop()


@pytest.fixture
def ad_config(tmp_path, samba, backend):
    """Write a flavour: ad config for the test DC; keyword arguments override
    (or, given as None, drop) keys of its sections."""

    def make(*, ldap=None, users=None, groups=None, mapping=None, outputs=None) -> Path:
        secret = tmp_path / "bind.password"
        secret.write_text(SYNC_PASSWORD + "\n")
        secret.chmod(0o600)
        data = {
            "flavour": "ad",
            "ldap": {"servers": [samba.url], "bind_dn": SYNC_DN, "bind_password_file": str(secret),
                     "page_size": 500, "backend": backend, **(ldap or {})},
            "users": {"base": CORP, **(users or {})},
            "groups": {"base": GROUPS, **(groups or {})},
            "mapping": {"jid": "{{ sAMAccountName | lower }}@example.test", **(mapping or {})},
            "outputs": outputs or [{"path": str(tmp_path / "groups.txt"), "host": HOST}],
        }
        for section in data.values():
            if isinstance(section, dict):
                for key in [k for k, v in section.items() if v is None]:
                    del section[key]
        path = tmp_path / "ldapsync.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        path.chmod(0o600)
        return path

    return make

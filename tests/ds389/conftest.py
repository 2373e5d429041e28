"""One 389 Directory Server for the session (memberOf, referential
integrity, retro changelog and content synchronization on, as FreeIPA
runs it); each test that changes data starts from a data set reloaded
online (tests/ds389/directory.py), not from a new server."""

from __future__ import annotations

import os

import pytest

from devtools import ds389 as harness
from tests.conftest import need
from tests.ds389 import directory as data


@pytest.fixture(scope="session")
def ds389(tmp_path_factory):
    if os.geteuid() != 0:
        # skipped even with LDAPSYNC_REQUIRE_REAL=1: CI runs as root, where a missing 389-ds fails
        pytest.skip("creating a 389-ds instance needs root")
    need(harness.missing())
    server = harness.DS389(tmp_path_factory.mktemp("ds389-shared"), extra_ldif_text=data.sync_account(),
                           plugins=("memberof", "refint", "contentsync"))
    server.start()
    yield server
    server.stop()


def _reload(server: harness.DS389, ldif: str) -> harness.DS389:
    conn = server.admin_connection()
    try:
        data.clear(conn)
    finally:
        conn.unbind()
    server.load_ldif(text=ldif)
    return server


@pytest.fixture
def site(ds389):
    """The server holding the small site of data.site_ldif, as loaded."""
    return _reload(ds389, data.site_ldif())


@pytest.fixture
def walk(ds389):
    """The server holding the random walk's directory (data.walk_ldif), as loaded."""
    return _reload(ds389, data.walk_ldif())

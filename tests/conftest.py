"""Shared fixtures: the real Prosody and its Lua code, started once per session.

Set LDAPSYNC_REQUIRE_REAL=1 (CI does) to turn a missing real component into a
failure instead of a skip, so that CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.prosody import server
from tests.prosody.oracle import LuaOracle

REQUIRE_REAL = os.environ.get("LDAPSYNC_REQUIRE_REAL") == "1"


def need(reason: str | None) -> None:
    if reason is None:
        return
    if REQUIRE_REAL:
        pytest.fail(f"LDAPSYNC_REQUIRE_REAL=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(params=["ldap3", "python-ldap"])
def backend(request):
    """Every test that reads the directory runs with both backends."""
    if request.param == "python-ldap":
        try:
            import ldap  # noqa: F401
        except ImportError:
            need("python-ldap is not installed (pip install -e '.[test]')")
    return request.param


@pytest.fixture(scope="session")
def oracle():
    """Prosody's own util.jid and mod_groups.lua, run by lua5.4."""
    need(None if shutil.which("lua5.4") and server.PROSODY_LIB_OK else "Prosody's Lua code is not installed (Debian package prosody)")
    o = LuaOracle()
    yield o
    o.close()


@pytest.fixture(scope="session")
def prosody(tmp_path_factory):
    """A real Prosody on 127.0.0.1, shared by the whole session."""
    need(server.available())
    p = server.Prosody(tmp_path_factory.mktemp("prosody"))
    yield p
    p.stop()

"""Shared fixtures: the real Prosody and its Lua code, started once per session.

Set LDAPSYNC_REQUIRE_REAL=1 (CI does) to turn a missing real component into a
failure instead of a skip, so that CI can never pass by skipping.
"""

from __future__ import annotations

import logging
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
    need(None if shutil.which("lua5.4") and server.PROSODY_LIB_OK
         else "Prosody's Lua code is not installed (Debian package prosody)")
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


#: What a file ldapsync must never read, change or copy holds (think /etc/shadow).
VICTIM = b"root:$6$secret-hash:19000:0:99999:7:::\n"


@pytest.fixture
def victim(tmp_path):
    """A file of root's that an attacker would point a planted link at."""
    path = tmp_path / "shadow"
    path.write_bytes(VICTIM)
    path.chmod(0o600)
    return path


@pytest.fixture
def logged(caplog):
    """What ldapsync logs at INFO and above, also after a CLI test stopped its propagation."""
    logger = logging.getLogger("ldapsync")
    propagate, logger.propagate = logger.propagate, True
    caplog.set_level(logging.INFO, logger="ldapsync")
    yield caplog
    logger.propagate = propagate

"""Names in the shared test directory (data/directory.ldif) and its accounts.

The account constants come from devtools.slapd, whose slapd.conf grants the
limits; the DNs of people and groups are what data/directory.ldif holds.
"""

from pathlib import Path

from devtools.slapd import (  # noqa: F401  (re-exported for tests)
    ADMIN_DN,
    ADMIN_PASSWORD,
    BASE,
    LIMITED_DN,
    LIMITED_PASSWORD,
    SYNC_DN,
    SYNC_PASSWORD,
)

LDIF = Path(__file__).with_name("data") / "directory.ldif"
PEOPLE = f"ou=people,{BASE}"
CONTRACTORS = f"ou=contractors,{BASE}"
GROUPS = f"ou=groups,{BASE}"
SERVICES = f"ou=services,{BASE}"
BULK = f"ou=bulk,{BASE}"
BULK_USERS = 600
# Users of the LDIF: ten in ou=people and ou=contractors.
USERS = 10

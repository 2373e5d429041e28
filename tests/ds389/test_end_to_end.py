"""ldapsync run against a real 389 Directory Server, configured as a
389-ds/FreeIPA site would: the groups file, the counts, paged searches."""

from __future__ import annotations

import json
from pathlib import Path

import ldap3
import yaml

from ldapsync.groupsfile import reading
from tests.ds389 import directory as data
from tests.ldap.conftest import run
from tests.limits import NO_LIMITS

HOST = "example.com"


def write_config(tmp_path: Path, server, backend: str, name: str = "site", *, state: bool = False,
                 users_filter: str = "(objectClass=person)", disabled: str = "389ds") -> Path:
    secret = tmp_path / "bind.password"
    secret.write_text(data.SYNC_PASSWORD + "\n")
    secret.chmod(0o600)
    config = {
        "ldap": {"servers": [server.url], "bind_dn": data.SYNC_DN, "bind_password_file": str(secret),
                 "backend": backend, "page_size": data.PAGE_SIZE},
        "users": {"base": data.PEOPLE, "filter": users_filter, "disabled": disabled},
        "groups": {"base": data.GROUPS, "filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
                   "public": ["Everyone"]},
        "mapping": {"jid": "{{ uid | lower }}@example.com", "name": "{{ displayName or cn }}",
                    "group_name": "{{ description or cn }}"},
        "outputs": [{"path": str(tmp_path / f"groups-{name}.txt"), "host": HOST, "backups": 0,
                     "safety": NO_LIMITS}],
    }
    if state:
        config["state"] = {"path": str(tmp_path / f"state-{name}" / "state.json")}
        (tmp_path / f"state-{name}").mkdir(mode=0o700)
    path = tmp_path / f"ldapsync-{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


EXPECTED = """\
[+Everyone]
user01@example.com=Person Number 1
user02@example.com=User 2
user03@example.com=Person Number 3
user04@example.com=User 4
user05@example.com=Person Number 5
user06@example.com=User 6
user40@example.com=User 40
[Staff]
user01@example.com=Person Number 1
user02@example.com=User 2
user03@example.com=Person Number 3
user04@example.com=User 4
user05@example.com=Person Number 5
[locked]
[ops]
user04@example.com=User 4
user05@example.com=Person Number 5
user06@example.com=User 6
"""


def test_a_run_writes_the_groups_the_site_implies(capsys, tmp_path, site, backend):
    """groupOfNames and groupOfUniqueNames (a value with the #'...'B suffix),
    a group nested twice, a user locked with nsAccountLock left out; 45
    users read 20 a page by an account that may read 30 per search."""
    config = write_config(tmp_path, site, backend)
    code, out, err = run(capsys, "run", "-c", config, "--json")
    assert code == 0, out + err
    result = json.loads(out)
    assert (tmp_path / "groups-site.txt").read_text() == EXPECTED
    as_read = reading.read(tmp_path / "groups-site.txt")  # as Prosody's mod_groups reads it
    assert as_read.groups["ops"] == {"user04@example.com": "User 4", "user05@example.com": "Person Number 5",
                                     "user06@example.com": "User 6"}
    assert as_read.groups["locked"] == {} and as_read.public == ["Everyone"]
    counts = result["counts"]
    assert (counts["users_read"], counts["groups_read"], counts["users_in_groups"], counts["shared_groups"]) == \
        (data.SITE_USERS, 4, 7, 4)
    assert counts["users_left_out"] == {"disabled": 1, "in no selected group": data.SITE_USERS - 8}
    assert result["findings"] == [{"kind": "disabled", "subject": data.site_user(7),
                                   "message": "disabled (nsAccountLock: TRUE)"}]
    assert result["read"]["entries"] == data.SITE_USERS + 4


def test_the_sync_account_reads_more_than_its_size_limit_only_by_pages(site):
    """What makes the run above a test of paged searches: the same search
    unpaged is refused."""
    conn = ldap3.Connection(ldap3.Server(site.url, get_info=ldap3.NONE), data.SYNC_DN, data.SYNC_PASSWORD,
                            auto_bind=True)
    conn.search(data.PEOPLE, "(objectClass=person)", ldap3.SUBTREE, attributes=["uid"])
    assert conn.result["description"] == "sizeLimitExceeded"
    assert data.SIZE_LIMIT < data.SITE_USERS
    pages = conn.extend.standard.paged_search(data.PEOPLE, "(objectClass=person)", ldap3.SUBTREE,
                                              attributes=["uid"], paged_size=data.PAGE_SIZE)
    assert len(list(pages)) == data.SITE_USERS

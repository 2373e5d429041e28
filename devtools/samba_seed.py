"""Fill a provisioned (and stopped) Samba AD database from a JSON description.

Run by devtools.samba with Debian's /usr/bin/python3, which has Samba's own
Python bindings (package python3-samba); ldapsync's virtualenv does not.
Writing into sam.ldb in one transaction makes thousands of users in
seconds, where a samba-tool call per user takes 0.2 s each.

    /usr/bin/python3 devtools/samba_seed.py SMB_CONF < description.json

The description: {"entries": [{"dn": ..., attribute: value or [values]}, ...],
"links": [[group DN, member DN], ...], "passwords": {dn: password}}; entries
are added in order (parents first, groups after their members), then the
links (a member added to an existing group: how a nesting cycle is made),
then the passwords are set; all or nothing.
"""

import json
import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB


def main() -> int:
    smb_conf = sys.argv[1]
    spec = json.load(sys.stdin)
    lp = LoadParm()
    lp.load(smb_conf)
    samdb = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
    base = str(samdb.domain_dn())
    samdb.transaction_start()
    try:
        for entry in spec["entries"]:
            samdb.add(entry)
        for group, member in spec.get("links", []):
            message = ldb.Message(ldb.Dn(samdb, group))
            message["member"] = ldb.MessageElement(member, ldb.FLAG_MOD_ADD, "member")
            samdb.modify(message)
        for dn, password in spec.get("passwords", {}).items():
            samdb.setpassword(f"(distinguishedName={ldb.binary_encode(dn)})", password)
    except BaseException:
        samdb.transaction_cancel()
        raise
    samdb.transaction_commit()
    print(f"{len(spec['entries'])} entries added under {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``preview``: the roster Prosody sends a user at login, from a groups file
or from the directory as it is now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ldapsync import groupsfile
from ldapsync import jid as jidlib
from ldapsync import roster as rosterlib
from ldapsync.actions.inputs import pick_output
from ldapsync.errors import ExitCode, UserError

if TYPE_CHECKING:
    from ldapsync.config import Config
    from ldapsync.sync import Fetched


@dataclass
class Preview:
    user: str
    items: list[rosterlib.RosterItem]
    source: str  # where the groups came from, in words
    own_groups: int  # the groups whose member lines name the user
    public_groups: int

    def as_json(self) -> list[dict[str, Any]]:
        return [item.as_json() for item in self.items]


def user_jid(raw: str, host: str | None) -> str:
    """The user's bare JID, prepared as Prosody prepares it (``raw`` may be
    a bare user name when ``host`` is given)."""
    text = raw if (host is None or "@" in raw) else f"{raw}@{host}"
    prepared = jidlib.prep(text)
    if prepared is None or "@" not in prepared or "/" in prepared:
        raise UserError(f"{raw!r} is not a user's bare JID (user@host)", ExitCode.USAGE)
    if host is not None:
        wanted = jidlib.prep(host)
        if prepared.split("@", 1)[1] != wanted:
            raise UserError(f"{prepared} is not a user of host {host}", ExitCode.USAGE)
    return prepared


def preview(user: str, reading: groupsfile.GroupsFile, source: str, personal: str | None = None) -> Preview:
    """``user``'s roster from the groups file ``reading``, with their
    personal roster (a JSON file, the format ``--json`` prints) merged in."""
    items: list[rosterlib.RosterItem] = []
    if personal:
        try:
            items = rosterlib.load_personal_roster(personal)
        except rosterlib.PersonalRosterError as exc:
            raise UserError(str(exc), ExitCode.DATAERR) from None
    result = rosterlib.received_items(rosterlib.build_roster(reading, user, items))
    broken = [i.jid for i in result if not all(map(groupsfile.xml_safe, (i.name or "", *i.groups)))]
    if broken:
        raise UserError(
            f"Prosody cannot send {user} a roster: the name or a group of {', '.join(broken[:5])} holds characters "
            f"XML cannot carry (run 'ldapsync check' on the groups file)", ExitCode.DATAERR)
    return Preview(user, result, source, len(set(reading.memberships.get(user, ()))), len(set(reading.public)))


def directory_reading(config: Config, output_path: str | None, user: str,
                      snapshot: Fetched) -> tuple[groupsfile.GroupsFile, str]:
    """The groups file a run would write now for ``user``'s output, read as Prosody reads it."""
    from ldapsync import sync

    output = pick_output(config, output_path, user)
    model, _ = sync.render_output(output, snapshot)  # rendered and verified: its reading is the model's
    return groupsfile.GroupsFile.of_model(model), f"the directory (output {output.path})"

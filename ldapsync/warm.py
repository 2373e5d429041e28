"""What one run leaves in memory for the next run of the same process.

``ldapsync serve`` polls the directory every minute or so.  A poll that
finds changes reads only them (:mod:`ldapsync.incremental`), but from there
on a cold run works on the whole directory again: it loads the snapshot,
maps every user, renders, verifies and compares every group.  serve's
poller process keeps a :class:`Warm` between its runs instead, and each
run redoes only what the changes touch.

Each step keeps its own part: :class:`membership.ResolveMemo`,
:class:`mapping.MappingMemo`, and here the output files' texts
(:class:`OutputMemo`); :class:`State` holds them with the snapshot.

A :class:`Warm` is a cache of what the last successful run saved: it is
used only while the snapshot on disk, the config and the output files are
exactly as that run left them, and it is emptied at the start of every
run and filled again only when the run succeeded, so a run that fails
half-way can never leave it ahead of the disk.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ldapsync import groupsfile
from ldapsync.mapping import MappingMemo
from ldapsync.membership import ResolveMemo
from ldapsync.model import GroupsModel, SharedGroup
from ldapsync.rosterdiff import Interned

if TYPE_CHECKING:
    from ldapsync.incremental import Kept


class Warm:
    """The last successful run's state, for the next run in this process."""

    def __init__(self) -> None:
        self._state: State | None = None

    def take(self, config_hash: str) -> State:
        """What the last run left for a run of the config ``config_hash``
        (empty when there is none, or it was another config), and nothing
        left here until :meth:`put` gives a run's state back."""
        state, self._state = self._state, None
        if state is None or state.config_hash != config_hash:
            return State(config_hash)
        state.used = True
        return state

    def put(self, state: State) -> None:
        """Keep what a run that succeeded leaves, for the next run."""
        state.used = False
        self._state = state


@dataclass
class State:
    """What one run leaves for the next: the snapshot it saved, what it
    mapped, and each output file as it wrote it."""

    config_hash: str
    snapshot: Kept | None = None
    resolve: ResolveMemo = field(default_factory=lambda: ResolveMemo())
    mapping: MappingMemo = field(default_factory=lambda: MappingMemo())
    outputs: dict[str, OutputMemo] = field(default_factory=dict)  # output path -> its file
    used: bool = False  # filled by the last run (else a run starts cold)


@dataclass
class OutputMemo:
    """One output file as a run wrote it (or found it): its bytes, what
    Prosody reads from them, its groups, and the text of each group by the
    very SharedGroup it was rendered from (the mapping memo gives a group
    that did not change back as the same object)."""

    data: bytes
    reading: groupsfile.GroupsFile
    groups: dict[str, SharedGroup]  # name -> the group the file holds
    blocks: dict[int, tuple[SharedGroup, bytes]] = field(default_factory=dict)
    verified: bool = True  # ldapsync rendered and verified this file (not so for a file found on disk)
    interned: Interned = field(default_factory=Interned)  # ids and bitmaps of its groups, for the next diff

    @classmethod
    def of_file(cls, data: bytes, reading: groupsfile.GroupsFile) -> OutputMemo:
        """A file not known to be verified: the next run checks all it writes."""
        return cls(data, reading, {g.name: g for g in reading.to_model().groups}, verified=False)

    @classmethod
    def of_verified(cls, model: GroupsModel, data: bytes, reading: groupsfile.GroupsFile,
                    texts: list[str] | None = None) -> OutputMemo:
        """A file known to mean ``model`` exactly (verified when written; its
        ``reading``), with each group's text for the next run to reuse:
        ``texts`` when the caller rendered them (groupsfile.render_groups),
        else rendered now; if the texts do not make ``data`` (a file some
        other version of ldapsync wrote), the file is taken as not verified."""
        if texts is None:
            texts = list(map(groupsfile.group_text, model.groups))
        blocks = {id(g): (g, text.encode("utf-8")) for g, text in zip(model.groups, texts, strict=True)}
        if b"".join(text for _, text in blocks.values()) != data:
            return cls.of_file(data, reading)
        return cls(data, reading, {g.name: g for g in model.groups}, blocks)

    def changed_names(self, model: GroupsModel) -> set[str]:
        """The groups of ``model`` that the file does not hold as they are,
        and the file's groups that ``model`` lacks."""
        known = self.groups
        changed = {g.name for g in model.groups if (k := known.get(g.name)) is not g and k != g}
        return changed | (known.keys() - {g.name for g in model.groups})

    def render(self, model: GroupsModel) -> tuple[bytes, dict[int, tuple[SharedGroup, bytes]]] | None:
        """The file for ``model`` and the text of each group; None when a
        check fails, for the caller to render the whole model the plain way
        (:func:`groupsfile.render`), which then says why.

        Only what this file lacks is checked and read back: mod_groups
        reads a header as the start of a new group and each member line on
        its own, so a text made of one block per group (header, then one
        line per member) means the model when every header and every line
        does, the names are unique (GroupsModel checks) and no JID has two
        names.  The lines a group kept from this verified file were checked
        then; a JID can only have two names now through a line this file
        lacks, so the new lines are all that need checking against the
        other groups."""
        blocks: dict[int, tuple[SharedGroup, bytes]] = {}
        new_lines: dict[str, str | None] = {}
        parts: list[bytes] = []
        for group in model.groups:
            known = self.blocks.get(id(group))
            if known is None or known[0] is not group:
                before = self.groups.get(group.name) if self.verified else None
                new = (group.members if before is None else
                       {j: group.members[j] for j in self.interned.lines_differing(before.members, group.members)})
                if not _lines_verified(SharedGroup(group.name, new, group.public), new_lines):
                    return None
                known = (group, self._text(group, before, new))
            blocks[id(group)] = known
            parts.append(known[1])
        if new_lines and _names_differ(new_lines, model):
            return None
        return b"".join(parts), blocks

    def _text(self, group: SharedGroup, before: SharedGroup | None, new: Collection[str]) -> bytes:
        """The text of ``group``: when only a few of its members were renamed
        since ``before``, the text of ``before`` with their lines made again
        (:func:`groupsfile.with_lines_renamed`), else rendered anew."""
        if before is not None and before.public == group.public and len(new) * 8 < len(group.members):
            last = self.blocks.get(id(before))
            if last is not None and last[0] is before and before.members.keys() == group.members.keys():
                text = groupsfile.with_lines_renamed(last[1], group, new)
                if text is not None:
                    return text
        return groupsfile.group_text(group).encode("utf-8")


def _lines_verified(part: SharedGroup, new_lines: dict[str, str | None]) -> bool:
    """Whether the header and member lines of ``part`` (a group's lines
    this file lacks) can be written and read back as they are; each line's
    JID and name are added to ``new_lines``, and False when a JID has two
    names among them."""
    one = GroupsModel((part,))
    if groupsfile.unrepresentable(one):
        return False
    if groupsfile.reading_problems(groupsfile.parse(groupsfile.text_of(one)), one):
        return False
    return all(new_lines.setdefault(jid, name) == name for jid, name in part.members.items())


def _names_differ(new_lines: dict[str, str | None], model: GroupsModel) -> bool:
    """Whether a JID of ``new_lines`` has another name in a group of
    ``model`` (render refuses that: one name per JID)."""
    jids = new_lines.keys()
    for group in model.groups:
        members = group.members
        for jid in members.keys() & jids:  # in C, over the smaller side: most groups meet none
            if members[jid] != new_lines[jid]:
                return True
    return False

"""What one run leaves in memory for the next run of the same process.

``ldapsync serve`` polls the directory every minute or so.  A poll that
finds changes reads only them (:mod:`ldapsync.incremental`), but from there
on a cold run works on the whole directory again: it loads the snapshot,
maps every user, renders, verifies and compares every group.  serve's
poller process keeps a :class:`Warm` between its runs instead, and each
run redoes only what the changes touch.

A :class:`Warm` is a cache of what the last successful run saved: it is
used only while the snapshot on disk, the config and the output files are
exactly as that run left them, and it is emptied at the start of every
run and filled again only when the run succeeded, so a run that fails
half-way can never leave it ahead of the disk.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING

from ldapsync import groupsfile
from ldapsync.model import GroupsModel, SharedGroup

if TYPE_CHECKING:
    from ldapsync.directory import Entry
    from ldapsync.incremental import Kept
    from ldapsync.mapping import GroupOutcome, People, Person, PersonOutcome
    from ldapsync.membership import Finding


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


class ResolveMemo:
    """What resolving memberships gave last time (see membership._reused):
    the entries it was given, the users' index, and each group's direct
    users, subgroups and findings, by position in DN order."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self.users: list[Entry] | None = None
        self.groups: list[Entry] | None = None
        self.disabled_by_filter: set[str] | None = None
        self.index: tuple[dict[str, Entry], dict[str, str], dict[str, str], dict[str, str]] | None = None
        self.user_findings: list[Finding] = []
        self.group_keys: list[str] = []
        self.stripped: list[Entry | None] = []
        self.per_group: list[tuple[set[str], list[str], list[Finding]] | None] = []

    def remember(self, users: list[Entry], groups: list[Entry], disabled_by_filter: set[str] | None,
                 index: tuple[dict[str, Entry], dict[str, str], dict[str, str], dict[str, str]],
                 user_findings: list[Finding], group_keys: list[str], stripped: list[Entry | None],
                 per_group: list[tuple[set[str], list[str], list[Finding]] | None]) -> None:
        self.users, self.groups, self.disabled_by_filter, self.index = users, groups, disabled_by_filter, index
        self.user_findings, self.group_keys, self.stripped, self.per_group = (user_findings, group_keys, stripped,
                                                                              per_group)


class MappingMemo:
    """What mapping gave each user and each group last time, to give again
    where nothing it depends on changed.

    A user's outcome depends on their entry only (the templates are the
    config's, and a Warm is dropped when the config changes).  A group's
    depends on its entry, its users, and each of those users' JID and name
    after duplicate JIDs are settled: a group is mapped again when its
    entry or users differ, and its members are renamed in place when only
    some of its users' names or JIDs did.  ``is`` finds the entries a
    snapshot kept; ``==`` those read again in full (ldap3, a fallback)."""

    def __init__(self) -> None:
        self._people: dict[str, tuple[Entry, PersonOutcome]] = {}
        self._groups: dict[str, tuple[Entry, set[str], GroupOutcome]] = {}
        self._entries: list[Entry] | None = None  # the enabled users of the last run, in order
        self._outcomes: list[PersonOutcome] = []
        self._made: People | None = None
        self._changed: list[str] | None = None  # the users whose outcome this run changed (None: not known)
        self._named: dict[str, tuple[str, str | None]] = {}
        self._named_before: dict[str, tuple[str, str | None]] = {}
        self._renamed: set[str] = set()
        self.misses = [0, 0]  # users and groups mapped again in the last run

    def people(self, enabled: Sequence[tuple[str, Entry]],
               compute: Callable[[Sequence[tuple[str, Entry]]], list[PersonOutcome]]) -> People:
        """The users mapped (mapping.people_of), computing only those whose
        entry changed.  When no user was added, removed or renamed and the
        changed ones keep their JID, the last run's result is patched
        instead of built again."""
        from ldapsync.mapping import People, people_of

        entries = [entry for _, entry in enabled]
        changed = changed_in_place(self._entries, entries)
        if changed is not None and self._made is not None:
            fresh = compute([enabled[i] for i in changed])
            if all(_same_place(self._outcomes[i], outcome) for i, outcome in zip(changed, fresh, strict=True)):
                outcomes = list(self._outcomes)
                people = dict(self._made.people)
                for i, outcome in zip(changed, fresh, strict=True):
                    key = enabled[i][0]
                    outcomes[i] = outcome
                    people[key] = outcome.person  # type: ignore[assignment]  # _same_place: a person
                    self._people[key] = (entries[i], outcome)
                made = People(people, self._made.reshaped, self._made.collisions, self._made.left_out,
                              list(chain.from_iterable(map(attrgetter("findings"), outcomes))))
                self._remember(entries, outcomes, made, [enabled[i][0] for i in changed])
                self.misses[0] = len(changed)
                return _copy(made)
        outcomes = self._by_key(enabled, compute)
        made = people_of(enabled, outcomes)
        self._remember(entries, outcomes, made, None)
        return _copy(made)

    def _remember(self, entries: list[Entry], outcomes: list[PersonOutcome], made: People,
                  changed: list[str] | None) -> None:
        self._entries, self._outcomes, self._made, self._changed = entries, outcomes, made, changed

    def _by_key(self, enabled: Sequence[tuple[str, Entry]],
                compute: Callable[[Sequence[tuple[str, Entry]]], list[PersonOutcome]]) -> list[PersonOutcome]:
        """The outcome of each of ``enabled`` (user key, entry), computing
        only those whose entry changed."""
        known = self._people
        out: list[PersonOutcome | None] = []
        missing: list[int] = []
        for i, (key, entry) in enumerate(enabled):
            hit = known.get(key)
            if hit is not None and (hit[0] is entry or hit[0] == entry):
                out.append(hit[1])
            else:
                out.append(None)
                missing.append(i)
        for i, outcome in zip(missing, compute([enabled[i] for i in missing]), strict=True):
            out[i] = outcome
        done: list[PersonOutcome] = out  # type: ignore[assignment]  # every None filled above
        self._people = {key: (entry, outcome) for (key, entry), outcome in zip(enabled, done, strict=True)}
        self.misses[0] = len(missing)
        return done

    def named(self, people: dict[str, Person]) -> dict[str, tuple[str, str | None]]:
        """Each user's JID and name once duplicate JIDs are settled; the
        users whose JID or name changed since the last run are noted for
        :meth:`groups`."""
        changed = self._changed
        self._named_before = self._named
        if changed is None:
            named = {key: (p.jid, p.name) for key, p in people.items()}
            self._renamed = {key for key, _ in self._named.items() ^ named.items()}
        else:
            named = dict(self._named)
            self._renamed = set()
            for key in changed:
                person = people.get(key)
                now = None if person is None else (person.jid, person.name)
                if named.get(key) != now:
                    self._renamed.add(key)
                    if now is None:
                        del named[key]
                    else:
                        named[key] = now
        self._named = named
        return named

    def groups(self, each: Sequence[tuple[str, Entry, set[str]]],
               compute: Callable[[Sequence[tuple[str, Entry, set[str]]]], list[GroupOutcome]]) -> list[GroupOutcome]:
        """The outcome of each of ``each`` (group key, entry, its users),
        computing only the groups whose entry or users changed; a group
        whose users are the same but some renamed (:meth:`named`) gets
        their new JIDs and names in place."""
        renamed, known = self._renamed, self._groups
        out: list[GroupOutcome | None] = []
        missing: list[int] = []
        for i, (key, entry, users) in enumerate(each):
            hit = known.get(key)
            if hit is None or not (hit[0] is entry or hit[0] == entry) or not (hit[1] is users or hit[1] == users):
                out.append(None)
                missing.append(i)
            elif renamed.isdisjoint(users) or hit[2].group is None:
                out.append(hit[2])
            else:
                out.append(self._renamed_in(hit[2], users))
        for i, outcome in zip(missing, compute([each[i] for i in missing]), strict=True):
            out[i] = outcome
        done: list[GroupOutcome] = out  # type: ignore[assignment]  # every None filled above
        self._groups = {key: (entry, users, outcome) for (key, entry, users), outcome in zip(each, done, strict=True)}
        self.misses[1] = len(missing)
        return done

    def _renamed_in(self, outcome: GroupOutcome, users: set[str]) -> GroupOutcome:
        """``outcome`` with the new JID and name of each of its users renamed
        since: a JID is one user's only (duplicates are settled before), so
        a renamed user's old JID goes and their new one comes."""
        group = outcome.group
        assert group is not None
        # a SharedGroup's members are a read-only view of a dict: its copy is a dict copy, in C
        members: dict[str, str | None] = group.members.copy()  # type: ignore[attr-defined]
        before = self._named_before
        for key in self._renamed.intersection(users):
            old, new = before.get(key), self._named.get(key)
            if old is not None:
                members.pop(old[0], None)
            if new is not None:
                members[new[0]] = new[1]
        return outcome._replace(group=SharedGroup(group.name, members, group.public))


def _same_place(old: PersonOutcome, new: PersonOutcome) -> bool:
    """Whether a user's new outcome leaves everything but their name where
    it was: a person both times, with the same JID, rendered as it is."""
    return (old.person is not None and new.person is not None and old.person.jid == new.person.jid
            and old.reshaped is None and new.reshaped is None and old.left_out is None and new.left_out is None)


def _copy(made: People) -> People:
    """Copies of what settling duplicate JIDs changes (people, reshaped, left_out)."""
    return made._replace(people=dict(made.people), reshaped=dict(made.reshaped), left_out=dict(made.left_out),
                         findings=list(made.findings))


def changed_in_place(before: list[Entry] | None, now: list[Entry]) -> list[int] | None:
    """The positions where ``now`` holds another entry than ``before``, each
    with the same DN; None when the lists do not line up (an entry added,
    removed or renamed), or when too many changed for it to be worth it.
    Entries come in DN order, so an entry that changed sits where its old
    self was."""
    if before is None or len(before) != len(now):
        return None
    changed = [i for i, same in enumerate(map(operator.is_, before, now)) if not same]
    if len(changed) > REUSE_LIMIT or any(before[i].dn != now[i].dn for i in changed):
        return None
    return changed


REUSE_LIMIT = 10_000  # changed entries: beyond this, doing everything again costs about the same


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

    @classmethod
    def of_file(cls, data: bytes, reading: groupsfile.GroupsFile) -> OutputMemo:
        """A file not known to be verified: the next run checks all it writes."""
        return cls(data, reading, {g.name: g for g in reading.to_model().groups}, verified=False)

    @classmethod
    def of_verified(cls, model: GroupsModel, data: bytes, reading: groupsfile.GroupsFile) -> OutputMemo:
        """A file known to mean ``model`` exactly (verified when written; its
        ``reading``): each group's text is rendered once more, so that the
        next run reuses it; if the texts do not make ``data`` (a file some
        other version of ldapsync wrote), the file is taken as not verified."""
        blocks = {id(g): (g, groupsfile.text_of(GroupsModel((g,))).encode("utf-8")) for g in model.groups}
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
                new = dict(group.members.items() - before.members.items()) if before is not None else group.members
                if not _lines_verified(SharedGroup(group.name, new, group.public), new_lines):
                    return None
                known = (group, groupsfile.text_of(GroupsModel((group,))).encode("utf-8"))
            blocks[id(group)] = known
            parts.append(known[1])
        if new_lines and _names_differ(new_lines, model):
            return None
        return b"".join(parts), blocks


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

"""Active Directory's own answer to nesting: the in-chain matching rule.

With ``groups.nested: in_chain`` the server, not ldapsync, works out who is
in a group through groups within groups: for each shared group one search
of users.base for ``(&<users.filter>(memberOf:1.2.840.113556.1.4.1941:=<group
DN>))``, asking for no attributes.  That is one search per selected group,
on top of the usual two; AD (and Samba) evaluate the rule slowly over a
large subtree, and do so for every query, so users.base should be as narrow
as the users allow (the README's Active Directory section says how slow).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from jinja2 import TemplateError

from ldapsync import dn as dnlib
from ldapsync.config import Config
from ldapsync.directory import Backend, Entry, parenthesized
from ldapsync.mapping import Templates, cleaned_name, selected
from ldapsync.membership import Memberships

log = logging.getLogger(__name__)

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN


def in_chain_filter(user_filter: str, group_dn: str) -> str:
    """The filter for the users in ``group_dn`` at any depth."""
    from ldap3.utils.conv import escape_filter_chars  # ldap3 loads only where it is used

    return f"(&{parenthesized(user_filter)}(memberOf:{IN_CHAIN}:={escape_filter_chars(group_dn)}))"


def selected_groups(config: Config, templates: Templates, groups: Iterable[Entry]) -> list[Entry]:
    """The groups whose shared name groups.include/exclude select: only
    those need a search.  A group whose name cannot be rendered is kept (the
    mapping reports it)."""
    gs = config.groups
    chosen = []
    for entry in groups:
        try:
            # the shared name exactly as ldapsync.mapping makes it
            name = cleaned_name(templates.render("group_name", entry, templates.group_attributes))
        except TemplateError:
            chosen.append(entry)
            continue
        if selected(name, gs.include, gs.exclude):
            chosen.append(entry)
    return chosen


def in_chain_members(directory: Backend, config: Config, templates: Templates,
                     groups: Iterable[Entry]) -> dict[str, set[str]]:
    """For each selected group (by DN key), the DN keys of the users the
    server finds in it at any depth: one search per group."""
    us = config.users
    started = time.monotonic()
    found: dict[str, set[str]] = {}
    chosen = selected_groups(config, templates, groups)
    for entry in chosen:
        users = directory.search(us.base, in_chain_filter(us.filter, entry.dn), [], us.scope,
                                 f"the users in {entry.dn}")
        found[dnlib.normalize(entry.dn)] = {dnlib.normalize(u.dn) for u in users}
    log.info("asked the server for the users of %d groups (in-chain rule) in %.1f s", len(chosen),
             time.monotonic() - started)
    return found


def apply_in_chain(members: Memberships, found: dict[str, set[str]]) -> None:
    """Put the server's answers in ``members``: each group's users are those
    the in-chain search found (disabled ones left out) and those it lists
    directly (memberUid, for one).  Groups not asked about keep their
    direct users."""
    keys = {k: k for k in members.users}
    for group, users in found.items():
        if group not in members.members:
            continue
        chained = {keys[u] for u in users if u in keys and u not in members.disabled}
        members.members[group] = chained | members.direct_users.get(group, set())

"""The groups file of Prosody's mod_groups: read it as Prosody does
(:mod:`.reading`, with :mod:`.diagnostics` for ``check``), write it safely
(:mod:`.writing`)."""

from ldapsync.groupsfile.diagnostics import Diagnostic, xml_safe
from ldapsync.groupsfile.reading import DEFAULT_GROUP, GroupsFile, lines_differing, name_as_read, parse, read
from ldapsync.groupsfile.writing import (
    RenderError,
    clean_text,
    group_text,
    reading_problems,
    render,
    render_groups,
    render_unverified,
    sanitise,
    text_of,
    unrepresentable,
    verify,
    with_lines_renamed,
    writable_jid,
)

__all__ = [
    "DEFAULT_GROUP",
    "Diagnostic",
    "GroupsFile",
    "RenderError",
    "clean_text",
    "group_text",
    "lines_differing",
    "name_as_read",
    "parse",
    "read",
    "reading_problems",
    "render",
    "render_groups",
    "render_unverified",
    "sanitise",
    "text_of",
    "unrepresentable",
    "verify",
    "with_lines_renamed",
    "writable_jid",
    "xml_safe",
]

"""The config's jinja2 templates: compiled once, sandboxed, and strict.

A template that names a variable it cannot have fails when the config is
loaded, not at 3 a.m.  Every attribute a template names is fetched from the
directory and always defined when rendering (an empty string when the entry
lacks it), so that ``{{ displayName or cn }}`` falls back as a sysadmin
expects.  The users' JID and name templates are rendered for all users in a
few calls (:meth:`Templates.render_people`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateRuntimeError, meta
from jinja2.sandbox import SandboxedEnvironment

from ldapsync.config import ConfigError, MappingSettings
from ldapsync.directory import Entry

# Names a template may use besides directory attributes.
_EXTRA = {"dn", "attrs"}
_FALLBACK_EXTRA = {"jid", "jid_node"}


class Templates:
    """The four mapping templates, compiled, with the attributes they use."""

    def __init__(self, settings: MappingSettings) -> None:
        self.env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        problems = []
        compiled = {}
        used: dict[str, set[str]] = {}
        for key in ("jid", "name", "name_fallback", "group_name"):
            source = getattr(settings, key)
            try:
                ast = self.env.parse(source)
                compiled[key] = self.env.from_string(ast)  # compiled from the tree just parsed
            except TemplateError as exc:
                problems.append(f"mapping.{key}: {exc}")
                continue
            names = meta.find_undeclared_variables(ast)
            extra = _EXTRA | (_FALLBACK_EXTRA if key == "name_fallback" else set())
            used[key] = {n for n in names if n not in extra}
        if problems:
            raise ConfigError("(templates)", problems)
        self.compiled = compiled
        self.user_attributes = sorted(used["jid"] | used["name"] | used["name_fallback"])
        self.group_attributes = sorted(used["group_name"])
        # jid and name in one pass, and many entries per render: setting up a
        # template context is most of the cost of a render
        self._people = self._batch(settings.jid + _SEPARATOR + settings.name, self.user_attributes)
        self._group_names = self._batch(settings.group_name, self.group_attributes)

    def render(self, key: str, entry: Entry, attributes: Iterable[str], **extra: str) -> str:
        """The template ``key`` for one entry.  Raises TemplateError for
        whatever the template does wrong with this entry's data, also
        Python's own errors ({{ 1/0 }}, {{ uid + 1 }}, a filter given a bad
        argument), so that they are reported per entry like jinja2's."""
        try:
            return self.compiled[key].render(self._context(entry, attributes, extra)).strip()
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - a template is the config's code: any failure is the entry's
            raise TemplateRuntimeError(f"{type(exc).__name__}: {exc}") from None

    def render_people(self, entries: Sequence[Entry]) -> list[tuple[str, str] | None]:
        """The rendered jid and name templates of each user entry; None
        where the entry needs rendering on its own (a template failed, or
        the data held the separator)."""
        out: list[tuple[str, str] | None] = []
        for record in self._render_batch(self._people, entries, self.user_attributes):
            parts = None if record is None else record.split(_SEPARATOR)
            out.append((parts[0].strip(), parts[1].strip()) if parts is not None and len(parts) == 2 else None)
        return out

    def render_group_names(self, entries: Sequence[Entry]) -> list[str | None]:
        """The rendered group_name template of each group entry; None where
        the entry needs rendering on its own."""
        return [None if r is None else r.strip()
                for r in self._render_batch(self._group_names, entries, self.group_attributes)]

    def _batch(self, source: str, attributes: list[str]) -> Template | None:
        """``source`` inside a for loop whose targets are the template's
        variables: a render then costs one context for many entries.  None
        if the template does not fit in a loop (it falls back to one render
        per entry)."""
        targets = ", ".join([*attributes, "dn", "attrs"])
        try:
            return self.env.from_string(f"{{% for {targets} in {_ROWS} %}}{source}{_RECORD}{{% endfor %}}")
        except TemplateError:
            return None

    def _render_batch(self, template: Template | None, entries: Sequence[Entry],
                      attributes: list[str]) -> list[str | None]:
        keys = [a.lower() for a in attributes]
        out: list[str | None] = []
        for start in range(0, len(entries), _CHUNK):
            chunk = entries[start:start + _CHUNK]
            records = None
            if template is not None:
                rows = [(*[(e.attrs.get(k) or _EMPTY)[0] for k in keys], e.dn, e.attrs) for e in chunk]
                # some entry fails: the caller renders each on its own and reports which (Templates.render)
                with contextlib.suppress(Exception):
                    records = template.render({_ROWS: rows}).split(_RECORD)
            if records is not None and len(records) == len(chunk) + 1:
                out += records[:-1]
            else:
                out += [None] * len(chunk)
        return out

    @staticmethod
    def _context(entry: Entry, attributes: Iterable[str], extra: dict[str, Any]) -> dict[str, Any]:
        context: dict[str, Any] = {name: entry.first(name) for name in attributes}
        context["dn"] = entry.dn
        context["attrs"] = entry.attrs
        context.update(extra)
        return context


_ROWS = "_ldapsync_rows"
_RECORD = "\x00\x1eldapsync\x1e\x00"
_CHUNK = 2000
_EMPTY = ("",)
_SEPARATOR = "\x00\x1fldapsync\x1f\x00"

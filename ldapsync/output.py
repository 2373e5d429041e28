"""Plain-text output for people: aligned tables."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [list(map(str, headers))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def shown(value: str | None) -> str:
    """A name for a table cell: quotes where spaces or emptiness would hide it."""
    if value is None:
        return "-"
    if value == "" or value != value.strip() or not value.isprintable():
        return repr(value)
    return value


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 group``, ``2 groups``."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"

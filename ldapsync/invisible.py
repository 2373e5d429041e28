"""Characters that show nothing, or reorder what is shown: kept out of names.

A display name is all a roster shows of a contact, so a name must look like
what it is.  Unicode format characters (category Cf: the bidi overrides that
make ``"Alice\\u202egpj.exe"`` show as ``"Aliceexe.jpg"``, zero-width spaces
and joiners, the byte-order mark, the soft hyphen, tag characters...) and the
few other characters that render as nothing (Hangul fillers, the combining
grapheme joiner, stray variation selectors) can hide text, make two names
look alike, or make a name look empty.

Two uses are kept because scripts need them and they hide nothing: a zero-width
(non-)joiner between two letters, marks or symbols outside ASCII (Persian
names, Indic conjuncts, emoji sequences), and one variation selector right
after a visible character (the emoji form of ``"❤️"``).

The category comes from :mod:`unicodedata`, so the list follows the Unicode
version of the running Python.  ASCII text and printable text without the
few printable suspects are recognised without looking at each character.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["describe", "escaped", "has_invisible", "invisible_indexes", "surely_visible", "without_invisible"]

# Printable to str.isprintable() (letters and marks, not Cf), yet rendered as
# nothing: the Hangul fillers, the combining grapheme joiner, the Khmer
# inherent vowels Unicode says not to use, and the variation selectors.
_FILLERS = "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
_SELECTORS = "\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"
_PRINTABLE_SUSPECTS = re.compile(f"[{_FILLERS}{_SELECTORS}]")
_SELECTOR = re.compile(f"[{_SELECTORS}]")
_JOINERS = "\u200c\u200d"
# What a joiner may stand between: letters, marks and symbols (emoji, skin tones)
_JOINABLE = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "So", "Sk"})
# Unassigned code points that Unicode reserves as default-ignorable: a future
# format character renders as nothing already
_IGNORABLE_UNASSIGNED = ((0x2060, 0x206F), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))


def surely_visible(text: str) -> bool:
    """True for most text at the cost of a scan in C: ASCII, or printable
    with none of the few printable suspects.  Also holds for any text made
    by joining such texts.  False only means: ask :func:`has_invisible`."""
    return text.isascii() or (text.isprintable() and _PRINTABLE_SUSPECTS.search(text) is None)


def invisible_indexes(text: str) -> list[int]:
    """The positions in ``text`` of the characters that show nothing or
    reorder the text around them; empty when there are none."""
    if surely_visible(text):
        return []
    return [i for i, ch in enumerate(text) if _hidden(text, i, ch)]


def has_invisible(text: str) -> bool:
    return not surely_visible(text) and any(_hidden(text, i, ch) for i, ch in enumerate(text))


def without_invisible(text: str) -> str:
    """``text`` without the characters :func:`invisible_indexes` finds.  What
    is left has none: a kept joiner or selector keeps its visible neighbours."""
    found = invisible_indexes(text)
    if not found:
        return text
    drop = set(found)
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


def describe(text: str, limit: int = 3) -> str:
    """The invisible characters of ``text`` by code point and name, for a message."""
    seen: list[str] = []
    for i in invisible_indexes(text):
        ch = text[i]
        label = f"U+{ord(ch):04X} {unicodedata.name(ch, 'unassigned')}"
        if label not in seen:
            seen.append(label)
    shown = ", ".join(seen[:limit])
    return shown + (f" and {len(seen) - limit} more" if len(seen) > limit else "")


def escaped(text: str) -> str:
    """``repr(text)`` with every invisible character written as an escape:
    repr() escapes format characters but shows a Hangul filler as it is."""
    shown = repr(text)
    if shown.isascii() or _PRINTABLE_SUSPECTS.search(shown) is None:
        return shown
    return _PRINTABLE_SUSPECTS.sub(_escape, shown)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _hidden(text: str, i: int, ch: str) -> bool:
    if ch.isascii():
        return False
    if ch in _FILLERS:
        return True
    category = unicodedata.category(ch)
    if category == "Cf":
        return not (ch in _JOINERS and _joins(text, i))
    if category == "Mn" and _SELECTOR.match(ch):
        return i == 0 or not _shows(text[i - 1])
    if category == "Cn":
        code = ord(ch)
        return any(low <= code <= high for low, high in _IGNORABLE_UNASSIGNED)
    return False


def _joins(text: str, i: int) -> bool:
    """A joiner between two visible letters, marks or symbols outside ASCII."""
    if i == 0 or i + 1 >= len(text):
        return False
    before, after = text[i - 1], text[i + 1]
    if _SELECTOR.match(before):  # an emoji in its emoji form: "\U0001f3f3\ufe0f\u200d\U0001f308"
        if i < 2 or not _shows(text[i - 2]):
            return False
        before = text[i - 2]
    return all(not c.isascii() and c not in _FILLERS and not _SELECTOR.match(c)
               and unicodedata.category(c) in _JOINABLE for c in (before, after))


def _shows(ch: str) -> bool:
    """Whether a variation selector after ``ch`` selects a glyph of something
    visible: not after white space, a control, or anything invisible."""
    if ch in _FILLERS or _SELECTOR.match(ch):
        return False
    return unicodedata.category(ch)[0] in "LMNPS"

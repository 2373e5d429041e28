"""Invisible and bidi characters: every format character is found, the few
uses scripts need are kept, and cleaning leaves nothing to find."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.groupsfile import clean_text
from ldapsync.invisible import describe, escaped, has_invisible, invisible_indexes, surely_visible, without_invisible
from tests.budget import examples

FORMAT_CHARACTERS = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
JOINERS = ["\u200c", "\u200d"]
FILLERS = ["\u115f", "\u1160", "\u3164", "\uffa0", "\u034f", "\u17b4", "\u17b5"]


def test_every_format_character_is_found_between_ascii_letters():
    assert len(FORMAT_CHARACTERS) > 150  # the scan found the category
    for ch in FORMAT_CHARACTERS:
        for text in (f"a{ch}b", f"\u0627{ch}a", ch, f"{ch}\u0627"):
            assert invisible_indexes(text) == [text.index(ch)], (hex(ord(ch)), text)


@pytest.mark.parametrize("ch", FILLERS)
def test_printable_characters_that_render_as_nothing_are_found(ch):
    assert ch.isprintable()  # why str.isprintable() is not enough
    assert not surely_visible(f"Alice{ch}")
    assert without_invisible(f"Al{ch}ice") == "Alice"


def test_visible_characters_are_not_found():
    suspects = {*FILLERS, *(chr(c) for c in range(0xFE00, 0xFE10)), "\u180b", "\u180c", "\u180d", "\u180f"}
    for c in range(0x20, 0x10000):
        ch = chr(c)
        if unicodedata.category(ch)[0] in "LMNPSZ" and ch not in suspects:
            assert not has_invisible(f"\u00e9{ch}\u00e9"), hex(c)


@pytest.mark.parametrize(
    "text",
    [
        "\u062d\u0633\u06cc\u0646\u200c\u0632\u0627\u062f\u0647",  # a Persian surname: ZWNJ between letters
        "\u0915\u094d\u200d\u0937",  # Devanagari: ZWJ after a virama
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # an emoji family
        "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # with a skin tone
        "\U0001f3f3\ufe0f\u200d\U0001f308",  # a flag in emoji form, then a joiner
        "I \u2764\ufe0f Prosody",  # one selector after a visible character
        "S\u00f8ren \u2800",  # the braille blank is a visible blank cell
    ],
)
def test_what_scripts_and_emoji_need_is_kept(text):
    assert invisible_indexes(text) == []
    assert clean_text(text) == text


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Alice\u202egpj.exe", "Alicegpj.exe"),
        ("al\u200bice", "alice"),
        ("A\u200dB", "AB"),  # a joiner between ASCII letters joins nothing
        ("\u200c\u0627", "\u0627"),  # nor at an end
        ("\u0627\u200c\u200c\u0627", "\u0627\u0627"),  # nor two in a row
        ("\ufeffTeam", "Team"),
        ("x\u00ady", "xy"),
        ("flag\U000e0067\U000e0062\U000e007f", "flag"),  # tag characters
        ("A" + "\ufe0f" * 8, "A\ufe0f"),  # selectors piled on one letter
        ("\ufe0fA", "A"),
        ("a \ufe0f", "a "),  # nor after white space
        ("\u2066Bob\u2069", "Bob"),
        ("a\u2065b", "ab"),  # unassigned, but reserved as default-ignorable
    ],
)
def test_invisible_characters_are_removed(text, clean):
    assert without_invisible(text) == clean
    assert has_invisible(text) and not has_invisible(clean)


def test_blank_looking_names_become_empty():
    assert clean_text("\u3164") == ""
    assert clean_text("\u00a0\u2800 \u3000") == ""
    assert clean_text("\u200b") == ""
    assert clean_text("Al\u00a0ice") == "Al\u00a0ice"


def test_messages_show_what_is_hidden():
    assert escaped("Al\u3164ice\u202e") == "'Al\\u3164ice\\u202e'"
    assert escaped("Alice") == "'Alice'"
    assert describe("a\u202eb\u200bc\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH SPACE"


SUSPECTS = [*FORMAT_CHARACTERS[:40], "\u200b", "\u200c", "\u200d", "\u202e", "\u2066", "\u2069", "\ufeff",
            "\U000e0041", *FILLERS, "\ufe0f", "\ufe0e", "\U000e0100", "\u180b", "\u2065", "\u2800", "\u00a0"]
SCRIPT = ["a", "Z", " ", "\t", "\n", "\x00", "=", "\u0627", "\u0632", "\u0915", "\u094d", "\u2764", "\U0001f468",
          "\U0001f3fd", "\u00e9", "\u0301", "\u3000"]


@settings(max_examples=examples(1000), deadline=None)
@given(st.lists(st.sampled_from(SUSPECTS + SCRIPT), max_size=16).map("".join))
def test_cleaning_leaves_nothing_to_clean(text):
    once = clean_text(text)
    assert not has_invisible(once) and clean_text(once) == once
    assert without_invisible(without_invisible(text)) == without_invisible(text)
    assert has_invisible(text) == bool(invisible_indexes(text))
    if surely_visible(text):
        assert not has_invisible(text)

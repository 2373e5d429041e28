"""JID preparation: the examples of docs/prosody.md, and the real util.jid as judge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync import jid
from tests.budget import examples, stride


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("ÄLICE@EXAMPLE.COM", "älice@example.com"),
        ("Straße@example.com", "strasse@example.com"),
        ("ａｌｉｃｅ@ＥＸＡＭＰＬＥ.com", "alice@example.com"),  # fullwidth -> ASCII
        ("al\u200bice@example.com", "alice@example.com"),  # zero-width space dropped
        ("alice@example.com.", "alice@example.com"),  # trailing dot of the domain
        ("example.com", "example.com"),  # domain-only JIDs are fine
        ("alice@example.com/Phone", "alice@example.com/Phone"),  # resources keep their case
        ("a_b@ex_ample.com", "a_b@ex_ample.com"),  # no STD3 host rules
        ("#", "#"),  # what a "comment" line holds
    ],
)
def test_prep_matches_prosody_examples(raw, prepared):
    assert jid.prep(raw) == prepared


@pytest.mark.parametrize(
    "raw",
    ["@x", "a@b@x", "al:ice@x", 'a"b@x', "a&b@x", "a'b@x", "a<b@x", "a>b@x", "a b@x",
     ".", "a@", "a@x/", "", "a\x00b@x", "a@x/\x00", "\udcff@x", "x" * 1024 + "@x", "a@x/\x01"],
)
def test_prep_rejects_what_prosody_rejects(raw):
    assert jid.prep(raw) is None


def test_split_follows_util_jid():
    assert jid.split("a@b/c@d") == ("a", "b", "c@d")
    assert jid.split("b/c") == (None, "b", "c")
    assert jid.split("a@") is None
    assert jid.split("a@b/") is None


def test_is_prepared_and_bare():
    assert jid.is_prepared("alice@example.com")
    assert not jid.is_prepared("Alice@example.com")
    assert jid.bare("alice@example.com/phone") == "alice@example.com"


# --- the real Prosody decides ---------------------------------------------------------

def _probes(template: str, ranges) -> list[str]:
    return [template.format(chr(cp)) for lo, hi in ranges for cp in range(lo, hi, stride())
            if not 0xD800 <= cp < 0xE000]


PLANES = [(0x0, 0x20000), (0x2A6D0, 0x2A710), (0xE0000, 0xE0100), (0xF0000, 0xF0010), (0x10FFF0, 0x110000)]


@pytest.mark.parametrize(
    "template",
    [
        "a{}b@example.com",  # node: nodeprep, every code point
        "\u05d0{}\u05d0@example.com",  # between right-to-left letters: the bidi rule
        "u@ex{}ample.com",  # host: nameprep
        "u@example.com/r{}s",  # resource: resourceprep
    ],
)
def test_every_code_point_prepares_as_in_prosody(oracle, template):
    """Each code point of planes 0-1 (and samples of the others) in each JID
    part, compared with util.jid.prep of the installed Prosody."""
    probes = _probes(template, PLANES if template.startswith("a") or "\u05d0" in template else [(0, 0x10000)])
    expected = oracle.prep_many(probes)
    wrong = [(p, e, jid.prep(p)) for p, e in zip(probes, expected, strict=True) if jid.prep(p) != e]
    assert not wrong[:20], f"{len(wrong)} code points prepared differently from Prosody"


JID_ALPHABET = st.sampled_from(
    list("aZz09.-_@/@/ :&'\"<>=#+") + ["\u00c4", "\u00df", "\u0130", "\u05d0", "\u0627", "\u0661", "\u0301",
     "\u200b", "\u00a0", "\u3000", "\uff21", "\ufb01", "\u2160", "\u13a0", "\ufeff", "\u0378", "\x01", "\x7f",
     "\U0001d400", "\U000e0041", "\ufdd0", "\u0340", "\u1885", "\u17b4", "\u2028"]
)


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(JID_ALPHABET, max_size=14).map("".join))
def test_random_jids_prepare_as_in_prosody(oracle, text):
    assert jid.prep(text) == oracle.prep(text)


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(1000, 1100), st.sampled_from(["a", "\u00e9", "\ufdfa", "\u00df"]))
def test_length_limits_match_prosody(oracle, n, ch):
    for text in (ch * (n // len(ch.encode())) + "@x", "u@" + ch * (n // 2), "u@x/" + ch * (n // 3)):
        assert jid.prep(text) == oracle.prep(text)


PLAIN_ISH = st.lists(st.sampled_from(list("az09_.+-@\nA/ é") + ["example.com", "x" * 300, ".."]), max_size=12).map(
    "".join)


@settings(max_examples=examples(1000), deadline=None)
@given(st.lists(PLAIN_ISH, max_size=6))
def test_all_prepared_in_bulk_agrees_with_one_by_one(jids):
    assert jid.all_prepared(jids) == all(jid.is_prepared(j) for j in jids)


def test_all_prepared_takes_the_bulk_path_for_plain_jids(monkeypatch):
    """Guards the test above against a bulk path that never runs."""
    monkeypatch.setattr(jid, "is_prepared", lambda j: False)
    assert jid.all_prepared(["alice@example.com", "b.o-b+x@mail.example.org"])
    assert not jid.all_prepared(["alice@example.com\nbob@example.com"])

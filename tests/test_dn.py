"""DN comparison keys: every spelling of one entry gives one key."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldapsync.dn import is_under, named_keys, normalize, normalize_many, strip_uid_suffix
from tests.budget import examples


@pytest.mark.parametrize(
    "spellings",
    [
        ["uid=alice,ou=people,dc=example,dc=com", "UID=alice,OU=People,DC=Example,DC=COM",
         "uid=alice, ou=people, dc=example, dc=com", " uid = alice ,ou=people,dc=example,dc=com "],
        ["cn=R&D\\2C Europe,ou=groups,dc=example,dc=com", "cn=R&D\\, Europe,ou=Groups,dc=example,dc=com",
         'cn="R&D, Europe",ou=groups,dc=example,dc=com'],
        ["cn=J\\C3\\BCrgen,dc=x", "cn=Jürgen,dc=x", "CN=JÜRGEN,DC=X"],
        ["cn=a+uid=b,dc=x", "uid=b+cn=a,dc=x"],
    ],
)
def test_spellings_of_one_entry_share_a_key(spellings):
    assert len({normalize(s) for s in spellings}) == 1
    for spelling in spellings:  # and a member value of any spelling names the entry, found as it is
        assert named_keys([f"cn=other{i},dc=x" for i in range(3)] + [spelling], {normalize(spellings[0])})


def test_different_entries_differ():
    assert normalize("cn=a\\,b,dc=x") != normalize("cn=a,b=,dc=x")
    assert normalize("cn=a b,dc=x") != normalize("cn=ab,dc=x")


def test_uid_suffix_and_subtree():
    assert strip_uid_suffix("uid=carol,ou=people,dc=example,dc=com#'0101'B") == "uid=carol,ou=people,dc=example,dc=com"
    assert strip_uid_suffix("cn=a#b,dc=x") == "cn=a#b,dc=x"
    assert is_under(normalize("uid=a,OU=People,dc=x"), normalize("ou=people,dc=x"))
    assert not is_under(normalize("uid=a,ou=peoplex,dc=x"), normalize("ou=people,dc=x"))


DN_PARTS = st.sampled_from(["uid=", "cn=", "ou=", "dc=", "Alice", "BOB", "ΣΑΣ", "Σ", "ß", "İ", ",", "=", " ", "\n",
                            "\t", "\\2C", "\\,", '"', "+", "x"])


@settings(max_examples=examples(500), deadline=None)
@given(st.lists(st.lists(DN_PARTS, max_size=8).map("".join), max_size=6))
def test_many_dns_at_once_give_the_keys_of_one_at_a_time(dns):
    assert normalize_many(dns) == [normalize(dn) for dn in dns]


@settings(max_examples=examples(1000), deadline=None)
@given(st.lists(st.lists(DN_PARTS, max_size=8).map("".join), max_size=6),
       st.lists(st.lists(DN_PARTS, max_size=8).map("".join), max_size=3), st.data())
def test_the_keys_dns_name_are_found_as_by_normalizing_each(values, others, data):
    """named_keys() skips values that cannot match: it must find what
    normalizing every value finds, whatever the spellings."""
    keys = {normalize(v) for v in data.draw(st.lists(st.sampled_from(values), max_size=3))} if values else set()
    keys |= {normalize(o) for o in others}
    assert named_keys(values, keys) == {normalize(v) for v in values} & keys


def test_named_keys_finds_one_spelling_among_many():
    values = [f"uid=user{i:05d},ou=people,dc=example,dc=com" for i in range(1000)]
    values[500] = "UID=User00500 , ou=People,dc=example,dc=com"
    keys = {normalize("uid=user00500,ou=people,dc=example,dc=com"), normalize("uid=gone,ou=people,dc=example,dc=com")}
    assert named_keys(values, keys) == {"uid=user00500,ou=people,dc=example,dc=com"}

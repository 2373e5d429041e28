"""Range retrieval helpers (ldapsync.directory.ranges), without a server: the
follow-ups asked for and how the answers are put together."""

from __future__ import annotations

import pytest

from ldapsync.directory import Entry, ranges
from ldapsync.directory.ranges import Range, RangeError


@pytest.mark.parametrize(("name", "expected"), [
    ("member;range=0-1499", Range("member", 0, 1499)),
    ("member;range=1500-*", Range("member", 1500, None)),
    ("Member;Range=3000-4499", Range("Member", 3000, 4499)),
    ("member;binary;range=0-9", Range("member;binary", 0, 9)),
    ("member", None),
    ("member;range=", None),
    ("member;range=a-b", None),
    ("member;range=5", None),
])
def test_parse(name, expected):
    assert ranges.parse(name) == expected


def test_next_request_asks_for_as_many_values_as_the_last_answer_held():
    assert Range("member", 0, 1499).next_request() == "member;range=1500-2999"
    assert Range("member", 500, 999).next_request() == "member;range=1000-1499"
    with pytest.raises(ValueError):
        Range("member", 1500, None).next_request()


def test_requests():
    assert ranges.first_request("member", 500) == "member;range=0-499"
    assert ranges.request("member", 1500) == "member;range=1500-*"
    with pytest.raises(ValueError):
        ranges.first_request("member", 0)
    with pytest.raises(ValueError):
        ranges.request("member", 10, 5)


class FakeGroup:
    """A group of n members that answers in ranges of at most `cap` values,
    as AD does; `asked` records the follow-ups."""

    def __init__(self, n: int, cap: int) -> None:
        self.values = [f"cn=u{i},dc=x" for i in range(n)]
        self.cap = cap
        self.asked: list[str] = []

    def answer(self, low: int, high: int | None) -> dict[str, list[str]]:
        last = len(self.values) - 1
        high = last if high is None else high
        high = min(high, low + self.cap - 1)
        if low > last:
            return {}
        if high >= last:
            return {f"member;range={low}-*": self.values[low:]}
        return {f"member;range={low}-{high}": self.values[low:high + 1]}

    def fetch(self, dn: str, wanted: str) -> dict[str, list[str]]:
        self.asked.append(wanted)
        r = ranges.parse(wanted)
        return self.answer(r.low, r.high)


def test_a_group_is_completed_range_by_range():
    group = FakeGroup(3200, cap=1500)
    first = {"cn": ["big"], **group.answer(0, None)}
    attrs, searches = ranges.complete("cn=big", first, group.fetch)
    assert attrs == {"cn": ["big"], "member": group.values}
    assert searches == 2
    assert group.asked == ["member;range=1500-2999", "member;range=3000-4499"]


def test_an_answer_that_does_not_follow_on_fails():
    group = FakeGroup(3000, cap=1500)
    with pytest.raises(RangeError, match="asked for member;range=1500-2999"):
        ranges.complete("cn=big", group.answer(0, None), lambda dn, wanted: {})  # the group emptied meanwhile
    with pytest.raises(RangeError, match="not a range from 0"):
        ranges.complete("cn=big", {"member;range=5-9": ["x"]}, group.fetch)
    with pytest.raises(RangeError):  # the same range again: never an endless loop
        ranges.complete("cn=big", group.answer(0, None), lambda dn, wanted: group.answer(0, None))
    with pytest.raises(RangeError, match="ends before it starts"):  # an error of the server's, not a crash
        ranges.complete("cn=big", {"member;range=10-5": ["x"]}, group.fetch)


def test_completed_keeps_plain_entries_and_completes_ranged_ones_after_the_search():
    big, small = FakeGroup(2000, cap=500), FakeGroup(3, cap=500)
    events: list[str] = []

    def search():
        for dn, attrs in (("cn=big", big.answer(0, None)), ("cn=plain", {"member": ["a"]}),
                          ("cn=small", small.answer(0, None))):
            events.append(f"page entry {dn}")
            yield Entry(dn, attrs)
        events.append("search ended")

    def fetch(dn, wanted):
        events.append(f"follow-up {wanted}")
        return big.fetch(dn, wanted)

    heard = []
    out = list(ranges.completed(search(), fetch, Entry, lambda dn, sizes, n: heard.append((dn, sizes, n))))
    assert [e.dn for e in out] == ["cn=plain", "cn=small", "cn=big"]
    assert out[1].attrs == {"member": small.values}  # member;range=0-* needs no follow-up
    assert out[2].attrs == {"member": big.values}
    assert events.index("search ended") < events.index("follow-up member;range=500-999")
    assert heard == [("cn=big", {"member": 2000}, 3)]

"""The id converter's regular expression matches exactly the numbers an id column holds."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from growth.inputs import ID_MAX, _at_most


def matches(limit: int, text: str) -> bool:
    return re.fullmatch(_at_most(limit), text) is not None


def test_every_number_up_to_small_limits_and_none_beyond():
    for limit in (0, 1, 9, 10, 99, 100, 305, 1000, 2047):
        assert [n for n in range(3000) if matches(limit, str(n)) != (n <= limit)] == []


@given(st.integers(min_value=0, max_value=10**12))
def test_ids_match_exactly_up_to_the_id_column_limit(n: int):
    assert matches(ID_MAX, str(n)) == (n <= ID_MAX)
    assert matches(ID_MAX, "00" + str(n)) == (n <= ID_MAX)  # leading zeros, as the int converter allows


def test_signs_and_other_characters_never_match():
    assert not any(matches(ID_MAX, text) for text in ("-1", "+1", "1.0", "1e3", "", " 1", "１"))

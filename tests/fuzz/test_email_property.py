"""Property tests for email normalization: the key users, throttles and uniqueness are looked up by.

`normalize_email` must be idempotent (what is stored normalizes to itself, so the
stored form logs in and counts as the same account); case, surrounding whitespace
and Unicode composition variants map to one canonical form; huge inputs are
refused without trouble (no timing asserts: they return or raise, under the test timeout).
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.auth.accounts import check_email_syntax, normalize_email
from shared.errors import HTTP_STATUS, DomainError

SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# Letters whose upper case lowers back to themselves (so "case variant" is well defined).
LOCAL_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþ"
WHITESPACE = [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "\x0b", "\x0c"]


@SETTINGS
@given(st.text())
# Found by an exhaustive scan of the code points: lower-casing an NFC string can leave one that is not NFC.
@example("\u03aa\u0301")  # GREEK CAPITAL LETTER IOTA WITH DIALYTIKA + COMBINING ACUTE
@example("\u1fbc\u0345")  # GREEK CAPITAL LETTER ALPHA WITH PROSGEGRAMMENI + YPOGEGRAMMENI
@example("\u0130")  # İ lowers to two code points
@example(" \u0301x ")
def test_normalization_is_idempotent(text: str) -> None:
    once = normalize_email(text)
    assert normalize_email(once) == once
    assert unicodedata.is_normalized("NFC", once)
    assert once == once.strip()


addresses = st.tuples(
    st.text(alphabet=LOCAL_LETTERS, min_size=1, max_size=20),
    st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["com", "org", "example", "co", "xn--p1ai"]),
).map(lambda t: f"{t[0]}@{'.'.join(t[1])}.{t[2]}")


@st.composite
def variant(draw: st.DrawFn, address: str) -> str:
    chars = [c.upper() if draw(st.booleans()) else c for c in address]
    text = "".join(chars)
    if draw(st.booleans()):
        text = unicodedata.normalize("NFD", text)
    before = "".join(draw(st.lists(st.sampled_from(WHITESPACE), max_size=3)))
    after = "".join(draw(st.lists(st.sampled_from(WHITESPACE), max_size=3)))
    return f"{before}{text}{after}"


@SETTINGS
@given(addresses, st.data())
@example("éric.dupont@example.com", None)
def test_case_whitespace_and_composition_variants_share_one_form(
    address: str, data: st.DataObject | None
) -> None:
    variants = [address, address.upper(), f"  {address}\t", unicodedata.normalize("NFD", address.upper())]
    if data is not None:
        variants += [data.draw(variant(address)) for _ in range(3)]
    canonical = {normalize_email(v) for v in variants}
    assert canonical == {address}
    outcomes = set()
    for v in variants:
        try:
            outcomes.add(check_email_syntax(v))
        except DomainError as exc:
            assert HTTP_STATUS[exc.code] == 422 and exc.code == "invalid_input"
            outcomes.add("refused")
    assert len(outcomes) == 1, outcomes  # all accepted as the same address, or all refused
    assert outcomes <= {address, "refused"}


HUGE = 50_000


@st.composite
def huge_inputs(draw: st.DrawFn) -> str:
    unit = draw(
        st.one_of(
            st.sampled_from(
                ["a", "a.", "@", "a@", ".", "\u0301", "\u0130", " ", "\x00", "é", "a" * 63 + "."]
            ),
            st.text(min_size=1, max_size=4),
        )
    )
    body = (unit * (HUGE // len(unit) + 1))[:HUGE]
    return draw(st.sampled_from([body, f"{body}@example.com", f"a@{body}", f"{body}@{body}"]))


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(huge_inputs())
def test_huge_inputs_are_refused(text: str) -> None:
    assert isinstance(normalize_email(text), str)
    with pytest.raises(DomainError) as refused:
        check_email_syntax(text)
    assert HTTP_STATUS[refused.value.code] == 422 and refused.value.code == "invalid_input"

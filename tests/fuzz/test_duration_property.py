"""Property tests for `shared.config.parse_duration_ms`, the `1000 * 60 * 15` parser behind every duration.

Python itself is the oracle: any expression of integers with + - * / and
parentheses parses to `round(eval(text))` when that is finite and within the
range, and to a ConfigError naming the variable otherwise. Any other character
is refused the same way, and no input makes it raise anything else.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.config import ConfigError, parse_duration_ms

NAME = "SOME_DURATION"
ALLOWED = set("0123456789.+-*/() \t")
MAX_LENGTH = 256
MAX_MAGNITUDE = 10**15

SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

spaces = st.sampled_from(["", " ", "  ", "\t"])
# Mostly durations people write, sometimes numbers far beyond a float's exact integers.
integers = st.one_of(st.integers(0, 100_000), st.integers(0, 10**20)).map(str)
# Differences of integers beyond 2**53 that land back in range: exact only with integer arithmetic.
near_misses = st.tuples(st.integers(2**53, 10**20), st.integers(-1000, 1000)).map(
    lambda t: f"{t[0] + t[1]} - {t[0]}"
)


def _binary(parts: tuple[str, str, str, str, str]) -> str:
    left, pad_left, op, pad_right, right = parts
    return f"{left}{pad_left}{op}{pad_right}{right}"


expressions = st.recursive(
    st.one_of(integers, integers, near_misses),
    lambda inner: st.one_of(
        st.tuples(inner, spaces, st.sampled_from("+-*/"), spaces, inner).map(_binary),
        st.tuples(spaces, inner, spaces).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        inner.map(lambda e: f"-{e}"),
        inner.map(lambda e: f"+{e}"),
    ),
    max_leaves=10,
)


def oracle(text: str) -> int | None:
    """What the parser must return, or None when it must refuse."""
    if not text.strip() or len(text.strip()) > MAX_LENGTH:
        return None
    try:
        value: float = eval(text, {"__builtins__": {}}, {})  # the oracle: digits and operators only
    except ZeroDivisionError:
        return None
    except OverflowError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if abs(value) > MAX_MAGNITUDE:
        return None
    return round(value)


def parse(text: str) -> int | None:
    try:
        result = parse_duration_ms(NAME, text)
    except ConfigError as exc:
        assert exc.name == NAME
        assert str(exc).startswith(f"{NAME}: ")
        return None
    assert isinstance(result, int) and not isinstance(result, bool)
    return result


@pytest.mark.timeout(120)
@SETTINGS
@given(expressions, spaces, spaces)
@example("1000 * 60 * 15", "", "")
@example("(1000 * 60 * 60 * 24) * 7", " ", " ")
@example("100000000000000001 - 100000000000000000", "", "")  # beyond a float's exact integers
@example("10 / 4", "", "")  # 2.5: rounds half to even like Python
@example("1 / 0", "", "")
@example("1000000000000000 + 1", "", "")  # one past the range
def test_arithmetic_equals_python_rounded(expression: str, before: str, after: str) -> None:
    text = f"{before}{expression}{after}"
    assert parse(text) == oracle(text)


@pytest.mark.timeout(120)
@SETTINGS
@given(expressions, st.characters().filter(lambda c: c not in ALLOWED), expressions)
@example("1000", "e", "3")
@example("1", "_", "000")
@example("2", "*", "*3")  # `**` is only allowed characters, but not an allowed operator
@example("__import__('os')", ".", "system('x')")
@example("1", "\u00a0", "2")  # a no-break space inside is not a space we accept
@example("1", "\u0663", "0")  # ARABIC-INDIC DIGIT THREE: a digit to `str.isdigit`, not to us
def test_any_other_character_is_refused_naming_the_variable(left: str, intruder: str, right: str) -> None:
    text = f"{left}{intruder}{right}"
    with pytest.raises(ConfigError) as refused:
        parse_duration_ms(NAME, text)
    assert refused.value.name == NAME
    assert str(refused.value).startswith(f"{NAME}: ")


@pytest.mark.timeout(120)
@SETTINGS
@given(st.one_of(st.text(), st.text(alphabet=sorted(ALLOWED), max_size=MAX_LENGTH + 20)))
@example("(" * 128 + "1" + ")" * 128)
@example("(" * 200 + "1")
@example("-" * 255 + "1")
@example("+-" * 127 + "1")
@example("1" + "*9" * 127)
@example("9" * 256)
@example("1/" * 127 + "1")
@example("0.1 * 3")
@example("1..2")
@example("")
def test_never_raises_anything_but_config_error(text: str) -> None:
    result = parse(text)  # returns or raises ConfigError; anything else fails the test
    if result is not None and set(text.strip()) <= ALLOWED:
        assert result == oracle(text)

"""Common-password blocklist: an exact list on top of zxcvbn's estimate.

zxcvbn scores long passwords as strong even when they are famous (`correcthorsebatterystaple`)
or a common word dressed up (`P@ssw0rd2024!!!!`). The list is Django's 20,000 most common
passwords (shipped in wordlists/, BSD, see NOTICE) plus zxcvbn's own 30,000-entry password list
(installed, MIT) plus a few famous examples; a candidate is compared after NFKC, case folding,
removal of white space, undoing leetspeak and stripping appended digits and symbols.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from functools import cache
from importlib.resources import files

import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_STRIPPED_BASE = 4  # a shorter base left after stripping is not a "common password plus digits"
WEAK_SUFFIX_GUESSES = 1e10  # zxcvbn's "very unguessable" (score 4) starts here
ZXCVBN_MAX_CHARS = 72
_APPENDED = re.compile(r"[\W\d_]+$")
_WHITESPACE = re.compile(r"\s+")
_LEET = {"@": "a", "4": "a", "8": "b", "(": "c", "3": "e", "6": "g", "9": "g", "#": "h", "!": "i",
         "0": "o", "$": "s", "5": "s", "7": "t", "+": "t", "2": "z", "%": "x"}  # fmt: skip
_ONE_AS = ("i", "l")  # "1" stands for either


@cache
def common_passwords() -> frozenset[str]:
    """Loaded once, on first use (about 50,000 strings)."""
    folder = files("services.auth") / "wordlists"
    with gzip.open(str(folder / "common-passwords.txt.gz"), "rt", encoding="utf-8") as handle:
        django_list = handle.read().split("\n")
    extra = (folder / "extra-common-passwords.txt").read_text(encoding="utf-8").split("\n")
    entries = [*django_list, *FREQUENCY_LISTS["passwords"], *(e for e in extra if not e.startswith("#"))]
    return frozenset(_fold(e) for e in entries if e.strip())


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _unleet(text: str) -> set[str]:
    """Both readings of "1" (i and l); every other substitution has one reading."""
    mapped = "".join(_LEET.get(ch, ch) for ch in text)
    return {mapped.replace("1", letter) for letter in _ONE_AS}


def _split(form: str) -> tuple[str, str]:
    """(base, appended digits and symbols)."""
    match = _APPENDED.search(form)
    return (form, "") if match is None else (form[: match.start()], form[match.start() :])


def _weak_suffix(suffix: str) -> bool:
    """Appended characters an attacker's rules try early (years, repeats, sequences, short runs).

    A long random tail is real strength; a listed word followed by it is not refused.
    """
    if not suffix:
        return True
    return float(zxcvbn.zxcvbn(suffix[:ZXCVBN_MAX_CHARS])["guesses"]) < WEAK_SUFFIX_GUESSES


def candidates(password: str) -> set[tuple[str, str]]:
    """(form, appended suffix) pairs of `password` to compare with the list."""
    folded = _fold(password)
    forms = {folded, _WHITESPACE.sub("", folded)}
    for form in list(forms):
        forms |= _unleet(form)
    pairs = {(form, "") for form in forms}
    for form in forms:
        base, suffix = _split(form)
        if len(base) >= MIN_STRIPPED_BASE:
            pairs |= {(variant, suffix) for variant in {base, *_unleet(base)}}
    return pairs


def is_common(password: str) -> bool:
    """Listed as is, or a listed word followed by a guessable run of digits and symbols."""
    listed = common_passwords()
    return any(form in listed and _weak_suffix(suffix) for form, suffix in candidates(password))

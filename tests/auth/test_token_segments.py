"""The fast base64url segment check accepts and refuses exactly what PyJWT's own check does."""

from __future__ import annotations

import base64

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.api_jws import PyJWS

from services.auth.tokens import decode_segment

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ \n."


def pyjwt_answer(segment: bytes) -> bytes | None:
    try:
        return PyJWS._decode_base64url_segment(segment, "payload")
    except jwt.DecodeError:
        return None


def fast_answer(segment: bytes) -> bytes | None:
    try:
        return decode_segment(segment, "payload")
    except jwt.DecodeError:
        return None


@settings(max_examples=5000, deadline=None)
@given(st.binary(max_size=24).map(lambda raw: bytes(ALPHABET[b % len(ALPHABET)] for b in raw)))
def test_same_answer_as_pyjwt(segment: bytes) -> None:
    assert fast_answer(segment) == pyjwt_answer(segment)


@pytest.mark.parametrize(
    "segment",
    [
        b"",
        b"QQ",
        b"QQ==",
        b"QR",
        b"QQ=",
        b"QQ===",
        b"Q",
        b"QQ\n",
        b"Q+Q/",
        b"QUJD",
        b"QUJD====",
        b"QUI",
        b"QUJ",
        b"QUJ=",
        b"_w",
        b"_x",
        b"-_-_",
    ],
)
def test_edge_cases_match(segment: bytes) -> None:
    assert fast_answer(segment) == pyjwt_answer(segment)


URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 63), st.booleans(), st.booleans())
def test_same_answer_on_near_valid_segments(raw: bytes, last: int, tweak: bool, padded: bool) -> None:
    """Real encodings, with the last character swapped (non-canonical bits) and `=` padding or not."""
    encoded = base64.urlsafe_b64encode(raw)
    segment = encoded if padded else encoded.rstrip(b"=")
    if tweak:
        body = segment.rstrip(b"=")
        segment = body[:-1] + URLSAFE[last : last + 1] + segment[len(body) :]
    assert fast_answer(segment) == pyjwt_answer(segment)

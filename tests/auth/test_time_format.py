"""Every `expires_at` a client reads has one spelling: ISO-8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

import datetime as dt
import re

from shared.timefmt import iso_from_ms, iso_from_seconds, iso_utc, parse_iso_ms

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_one_spelling_from_every_source() -> None:
    moment = dt.datetime(2026, 12, 5, 6, 7, 8, 123456, tzinfo=dt.UTC)
    assert iso_utc(moment) == "2026-12-05T06:07:08.123Z"
    assert iso_utc(moment.replace(tzinfo=None)) == "2026-12-05T06:07:08.123Z"  # naive is UTC
    assert iso_from_ms(parse_iso_ms("2026-12-05T06:07:08.123Z")) == "2026-12-05T06:07:08.123Z"
    assert iso_from_seconds(0.5) == "1970-01-01T00:00:00.500Z"

"""One spelling of instants in API bodies: ISO-8601 UTC, milliseconds, `Z`.

Clients compare `expires_at` values across endpoints and services, so every
answer uses the same precision whatever the source (datetime or epoch ms).
"""

from __future__ import annotations

import datetime as dt


def iso_utc(value: dt.datetime) -> str:
    """A datetime (naive means UTC, as PyMongo returns them) as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds in the same spelling as `iso_utc`."""
    return iso_utc(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))


def iso_from_seconds(seconds: float) -> str:
    """Epoch seconds in the same spelling as `iso_utc`."""
    return iso_utc(dt.datetime.fromtimestamp(seconds, dt.UTC))


def parse_iso_ms(text: str) -> int:
    """An ISO-8601 instant (`Z` or offset) as epoch milliseconds."""
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
